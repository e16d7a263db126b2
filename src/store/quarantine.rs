//! The quarantine's life after the intake: one entry with its bytes (`loket quarantine show`),
//! released once into the pipeline (`release`), or dropped (`drop`), each with an audit entry.

use serde::Serialize;
use sqlx::{AnyConnection, AnyPool, Row};

use super::StoreError;
use super::blobs::{BlobId, Files};

type Result<T> = std::result::Result<T, StoreError>;

/// One quarantined message with its bytes.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineEntry {
    pub id: i64,
    pub desk: String,
    pub inbox: String,
    pub idempotency_key: String,
    pub reason: String,
    /// The stored bytes (from the files directory, or the row for an entry stored before it):
    /// the whole message, or only its header section when it was too large
    /// (`raw.len() < size`); empty once dropped.
    #[serde(skip)]
    pub raw: Vec<u8>,
    /// The file holding the bytes, when they are in the files directory.
    #[serde(skip)]
    pub raw_blob: Option<BlobId>,
    pub size: i64,
    pub created_at: i64,
    pub released_at: Option<i64>,
    pub dropped_at: Option<i64>,
}

/// One audit entry of a quarantined message.
#[derive(Debug, Clone, Serialize)]
pub struct QuarantineAudit {
    pub at: i64,
    pub actor: String,
    pub action: String,
    pub detail: String,
}

const COLS: &str = "id, desk, inbox, idempotency_key, reason, raw, raw_blob, size, created_at, released_at, dropped_at";

async fn entry(files: &Files, r: &sqlx::any::AnyRow) -> Result<QuarantineEntry> {
    let inline: Vec<u8> = r.try_get("raw")?;
    let blob: Option<String> = r.try_get("raw_blob")?;
    let raw_blob = blob.as_deref().and_then(BlobId::parse);
    let raw =
        if inline.is_empty() && blob.is_some() { files.read(None, blob).await?.unwrap_or_default() } else { inline };
    Ok(QuarantineEntry {
        id: r.try_get("id")?,
        desk: r.try_get("desk")?,
        inbox: r.try_get("inbox")?,
        idempotency_key: r.try_get("idempotency_key")?,
        reason: r.try_get("reason")?,
        raw,
        raw_blob,
        size: r.try_get("size")?,
        created_at: r.try_get("created_at")?,
        released_at: r.try_get("released_at")?,
        dropped_at: r.try_get("dropped_at")?,
    })
}

/// The entry `id`, read on a connection (inside the release's transaction).
pub async fn quarantine_entry(conn: &mut AnyConnection, files: &Files, id: i64) -> Result<Option<QuarantineEntry>> {
    let sql = format!("SELECT {COLS} FROM quarantine WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *conn).await?;
    match row {
        Some(r) => Ok(Some(entry(files, &r).await?)),
        None => Ok(None),
    }
}

/// The entry `id` and its audit entries (`loket quarantine show`).
pub async fn show_quarantine(
    pool: &AnyPool,
    files: &Files,
    id: i64,
) -> Result<Option<(QuarantineEntry, Vec<QuarantineAudit>)>> {
    let sql = format!("SELECT {COLS} FROM quarantine WHERE id = $1");
    let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await? else {
        return Ok(None);
    };
    let rows = sqlx::query(
        "SELECT at, actor, action, detail FROM quarantine_audit WHERE quarantine_id = $1 ORDER BY id LIMIT 100",
    )
    .bind(id)
    .fetch_all(pool)
    .await?;
    let audit = rows
        .iter()
        .map(|r| {
            Ok(QuarantineAudit {
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                action: r.try_get("action")?,
                detail: r.try_get("detail")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(Some((entry(files, &row).await?, audit)))
}

/// Marks the entry released, once: false when it was already released or dropped (another
/// release won), so that the pipeline runs on its bytes exactly once.
pub async fn mark_quarantine_released(conn: &mut AnyConnection, id: i64, now: i64) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE quarantine SET released_at = $1 WHERE id = $2 AND released_at IS NULL AND dropped_at IS NULL",
    )
    .bind(now)
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Drops the entry's bytes, once: false when it was already released or dropped.
pub async fn mark_quarantine_dropped(conn: &mut AnyConnection, id: i64, now: i64) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE quarantine SET dropped_at = $1, raw = $2, raw_blob = NULL WHERE id = $3 AND released_at IS NULL \
         AND dropped_at IS NULL",
    )
    .bind(now)
    .bind(Vec::<u8>::new())
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Appends an audit entry to a quarantined message.
pub async fn insert_quarantine_audit(
    conn: &mut AnyConnection,
    id: i64,
    now: i64,
    actor: &str,
    action: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    sqlx::query("INSERT INTO quarantine_audit (quarantine_id, at, actor, action, detail) VALUES ($1, $2, $3, $4, $5)")
        .bind(id)
        .bind(now)
        .bind(actor)
        .bind(action)
        .bind(detail.to_string())
        .execute(&mut *conn)
        .await?;
    Ok(())
}
