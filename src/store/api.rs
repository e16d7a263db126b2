//! The ticket API's rows: keys (the SHA-256 of each secret, never the secret), the audit of every
//! call, and the ticket list with the API's filters and cursor.

use serde::Serialize;
use sqlx::{AnyPool, Row};

use super::queries::{TICKET_COLS, placeholders, ticket_from};
use super::{Store, StoreError};
use crate::http::api::key::{Grant, Scope};
use crate::http::api::query::ListFilter;
use crate::ticket::Ticket;

type Result<T> = std::result::Result<T, StoreError>;

/// A key as `loket api-key list` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ApiKeyRow {
    pub id: i64,
    pub name: String,
    pub desks: Vec<String>,
    pub scope: Scope,
    pub created_at: i64,
    pub revoked_at: Option<i64>,
}

fn key_from(r: &sqlx::any::AnyRow) -> Result<ApiKeyRow> {
    let desks: String = r.try_get("desks")?;
    let scope: String = r.try_get("scope")?;
    Ok(ApiKeyRow {
        id: r.try_get("id")?,
        name: r.try_get("name")?,
        desks: serde_json::from_str(&desks).map_err(|e| StoreError::Corrupt(format!("api_keys.desks: {e}")))?,
        scope: Scope::parse(&scope).ok_or_else(|| StoreError::Corrupt(format!("api_keys.scope: `{scope}`")))?,
        created_at: r.try_get("created_at")?,
        revoked_at: r.try_get("revoked_at")?,
    })
}

/// Records a new key by the hash of its secret; returns its id.
pub async fn insert_api_key(
    store: &Store,
    name: &str,
    desks: &[String],
    scope: Scope,
    secret_sha256: &str,
    now: i64,
) -> Result<i64> {
    let desks = serde_json::to_string(desks).map_err(|e| StoreError::Corrupt(e.to_string()))?;
    let mut tx = store.begin().await?;
    let r = sqlx::query(
        "INSERT INTO api_keys (name, desks, scope, secret_sha256, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING id",
    )
    .bind(name)
    .bind(desks)
    .bind(scope.as_str())
    .bind(secret_sha256)
    .bind(now)
    .fetch_one(&mut *tx)
    .await?;
    let id: i64 = r.try_get("id")?;
    #[allow(clippy::disallowed_methods)] // no file is staged in this transaction
    tx.commit().await?;
    Ok(id)
}

pub async fn api_keys(pool: &AnyPool) -> Result<Vec<ApiKeyRow>> {
    let rows = sqlx::query("SELECT id, name, desks, scope, created_at, revoked_at FROM api_keys ORDER BY id")
        .fetch_all(pool)
        .await?;
    rows.iter().map(key_from).collect()
}

/// The live (not revoked) key `id`: what it may do, and the hash its secret must match.
pub async fn live_api_key(pool: &AnyPool, id: i64) -> Result<Option<(Grant, String)>> {
    let row = sqlx::query(
        "SELECT id, name, desks, scope, created_at, revoked_at, secret_sha256 FROM api_keys \
         WHERE id = $1 AND revoked_at IS NULL",
    )
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some(r) = row else { return Ok(None) };
    let k = key_from(&r)?;
    let hash: String = r.try_get("secret_sha256")?;
    Ok(Some((Grant { id: k.id, name: k.name, desks: k.desks, scope: k.scope }, hash)))
}

/// Revokes key `id`; false when there is no live key of that id.
pub async fn revoke_api_key(store: &Store, id: i64, now: i64) -> Result<bool> {
    let mut tx = store.begin().await?;
    let n = sqlx::query("UPDATE api_keys SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected();
    #[allow(clippy::disallowed_methods)] // no file is staged in this transaction
    tx.commit().await?;
    Ok(n == 1)
}

/// One API call, audited.
#[derive(Debug, Clone, Serialize)]
pub struct ApiAudit {
    pub key_id: i64,
    pub at: i64,
    pub operation: String,
    pub desk: Option<String>,
    pub ticket: Option<String>,
    pub status: i64,
}

pub async fn insert_api_audit(store: &Store, a: &ApiAudit) -> Result<()> {
    sqlx::query("INSERT INTO api_audit (key_id, at, operation, desk, ticket, status) VALUES ($1, $2, $3, $4, $5, $6)")
        .bind(a.key_id)
        .bind(a.at)
        .bind(&a.operation)
        .bind(a.desk.as_deref())
        .bind(a.ticket.as_deref())
        .bind(a.status)
        .execute(store.pool())
        .await?;
    Ok(())
}

/// The audit of key `key_id`, oldest first.
pub async fn api_audit(pool: &AnyPool, key_id: i64) -> Result<Vec<ApiAudit>> {
    let rows =
        sqlx::query("SELECT key_id, at, operation, desk, ticket, status FROM api_audit WHERE key_id = $1 ORDER BY id")
            .bind(key_id)
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(ApiAudit {
                key_id: r.try_get("key_id")?,
                at: r.try_get("at")?,
                operation: r.try_get("operation")?,
                desk: r.try_get("desk")?,
                ticket: r.try_get("ticket")?,
                status: r.try_get("status")?,
            })
        })
        .collect()
}

/// One page of tickets for the API: newest first, older than the cursor, one more than the
/// limit (so the caller knows whether a next page exists).
pub async fn api_tickets(pool: &AnyPool, f: &ListFilter) -> Result<Vec<Ticket>> {
    let n = f.desks.len();
    let first = n + 1;
    let sql = format!(
        "SELECT {TICKET_COLS} FROM tickets WHERE desk IN ({}) \
         AND (${} IS NULL OR status = ${}) \
         AND (${} IS NULL OR category = ${}) \
         AND (${} IS NULL OR subcategory = ${}) \
         AND (${} IS NULL OR requester_address = ${}) \
         AND (${} IS NULL OR id < ${}) \
         ORDER BY id DESC LIMIT ${}",
        placeholders(1, n),
        first,
        first,
        first + 1,
        first + 1,
        first + 2,
        first + 2,
        first + 3,
        first + 3,
        first + 4,
        first + 4,
        first + 5,
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for d in &f.desks {
        q = q.bind(d.as_str());
    }
    let rows = q
        .bind(f.status.map(|s| s.as_str()))
        .bind(f.category.as_deref())
        .bind(f.subcategory.as_deref())
        .bind(f.requester.as_ref().map(|r| r.as_str()))
        .bind(f.before)
        .bind(i64::from(f.limit) + 1)
        .fetch_all(pool)
        .await?;
    rows.iter().map(ticket_from).collect()
}
