//! Delegated OAuth grants: the sealed refresh token per credential. A refresh runs inside one
//! transaction: [`lock_grant`] reads the row and holds it (`FOR UPDATE` on PostgreSQL; SQLite's
//! `BEGIN IMMEDIATE` holds the whole file), the caller asks the provider, [`replace_refresh_token`]
//! writes the rotated token, and the commit makes both one step.

use sqlx::{AnyConnection, AnyPool, Row};

use super::{Backend, StoreError};

type Result<T> = std::result::Result<T, StoreError>;

/// A stored grant (the refresh token still sealed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GrantRow {
    pub sealed_refresh_token: String,
    pub rotations: i64,
    pub obtained_at: i64,
    pub updated_at: i64,
}

fn row(r: &sqlx::any::AnyRow) -> Result<GrantRow> {
    Ok(GrantRow {
        sealed_refresh_token: r.try_get("refresh_token")?,
        rotations: r.try_get("rotations")?,
        obtained_at: r.try_get("obtained_at")?,
        updated_at: r.try_get("updated_at")?,
    })
}

/// Stores the grant of a new login (replacing any earlier one).
pub async fn save_grant(pool: &AnyPool, credential: &str, sealed: &str, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO oauth_grants (credential, refresh_token, rotations, obtained_at, updated_at) \
         VALUES ($1, $2, 0, $3, $3) \
         ON CONFLICT (credential) DO UPDATE SET refresh_token = $2, rotations = 0, obtained_at = $3, updated_at = $3",
    )
    .bind(credential)
    .bind(sealed)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

/// Reads the grant inside the caller's transaction and holds it until the commit.
pub async fn lock_grant(conn: &mut AnyConnection, backend: Backend, credential: &str) -> Result<Option<GrantRow>> {
    let sql = match backend {
        Backend::Postgres => {
            "SELECT refresh_token, rotations, obtained_at, updated_at FROM oauth_grants WHERE credential = $1 FOR UPDATE"
        }
        Backend::Sqlite => {
            "SELECT refresh_token, rotations, obtained_at, updated_at FROM oauth_grants WHERE credential = $1"
        }
    };
    let r = sqlx::query(sql).bind(credential).fetch_optional(conn).await?;
    r.as_ref().map(row).transpose()
}

/// Writes the rotated refresh token (in the transaction that used the old one).
pub async fn replace_refresh_token(conn: &mut AnyConnection, credential: &str, sealed: &str, now: i64) -> Result<()> {
    sqlx::query(
        "UPDATE oauth_grants SET refresh_token = $2, rotations = rotations + 1, updated_at = $3 WHERE credential = $1",
    )
    .bind(credential)
    .bind(sealed)
    .bind(now)
    .execute(conn)
    .await?;
    Ok(())
}

/// The stored grant, for `loket oauth test` and the tests.
pub async fn grant(pool: &AnyPool, credential: &str) -> Result<Option<GrantRow>> {
    let r =
        sqlx::query("SELECT refresh_token, rotations, obtained_at, updated_at FROM oauth_grants WHERE credential = $1")
            .bind(credential)
            .fetch_optional(pool)
            .await?;
    r.as_ref().map(row).transpose()
}

/// How many grants are stored (the tests check that a refresh never adds one).
pub async fn count_grants(pool: &AnyPool) -> Result<i64> {
    Ok(sqlx::query("SELECT COUNT(*) AS n FROM oauth_grants").fetch_one(pool).await?.try_get("n")?)
}

/// Records that an alert about `credential` was sent for `period`; false when it already was
/// (inside the transaction that queues the mail, so a crash sends it neither twice nor never).
pub async fn claim_alert(
    conn: &mut AnyConnection,
    credential: &str,
    kind: &str,
    period: &str,
    now: i64,
) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO oauth_alerts (credential, kind, period, created_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (credential, kind, period) DO NOTHING RETURNING kind",
    )
    .bind(credential)
    .bind(kind)
    .bind(period)
    .bind(now)
    .fetch_optional(conn)
    .await?;
    Ok(r.is_some())
}

/// Forgets the alerts of one kind (the outage is over: the next one is reported again).
pub async fn clear_alerts(pool: &AnyPool, credential: &str, kind: &str) -> Result<()> {
    sqlx::query("DELETE FROM oauth_alerts WHERE credential = $1 AND kind = $2")
        .bind(credential)
        .bind(kind)
        .execute(pool)
        .await?;
    Ok(())
}
