//! Chat requesters (one row per desk, platform and platform user) and chat deliveries.

use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

use super::StoreError;
use crate::domain::Language;

type Result<T> = std::result::Result<T, StoreError>;

/// A chat requester as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatUser {
    pub id: i64,
    pub desk: String,
    pub platform: String,
    pub user_id: String,
    /// Where answers go (Telegram chat id, WhatsApp `wa_id`).
    pub chat_id: String,
    /// The requester address of this person's tickets (`telegram-555@chat.invalid`).
    pub address: String,
    pub name: Option<String>,
    pub language: Option<Language>,
    /// An email address the person linked to get replies by email as well.
    pub email: Option<String>,
    /// The guided flow in progress (JSON), if any.
    pub flow: Option<String>,
    pub active_ticket_id: Option<i64>,
    pub active_at: Option<i64>,
    pub last_inbound_at: i64,
}

const COLS: &str = "id, desk, platform, user_id, chat_id, address, name, language, email, flow, active_ticket_id, \
                    active_at, last_inbound_at";

fn from_row(r: &AnyRow) -> Result<ChatUser> {
    Ok(ChatUser {
        id: r.try_get("id")?,
        desk: r.try_get("desk")?,
        platform: r.try_get("platform")?,
        user_id: r.try_get("user_id")?,
        chat_id: r.try_get("chat_id")?,
        address: r.try_get("address")?,
        name: r.try_get("name")?,
        language: r.try_get::<Option<String>, _>("language")?.as_deref().and_then(Language::parse),
        email: r.try_get("email")?,
        flow: r.try_get("flow")?,
        active_ticket_id: r.try_get("active_ticket_id")?,
        active_at: r.try_get("active_at")?,
        last_inbound_at: r.try_get("last_inbound_at")?,
    })
}

/// Who someone is, creating the row on first contact; refreshes the chat id, name and the time
/// of their last message (the WhatsApp 24-hour window starts there).
#[allow(clippy::too_many_arguments)]
pub async fn upsert_chat_user(
    conn: &mut AnyConnection,
    desk: &str,
    platform: &str,
    user_id: &str,
    chat_id: &str,
    address: &str,
    name: Option<&str>,
    language: Option<&str>,
    now: i64,
) -> Result<ChatUser> {
    sqlx::query(
        "INSERT INTO chat_users (desk, platform, user_id, chat_id, address, name, language, last_inbound_at, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8) \
         ON CONFLICT (desk, platform, user_id) DO UPDATE SET chat_id = $4, name = COALESCE($6, chat_users.name), \
         last_inbound_at = $8",
    )
    .bind(desk)
    .bind(platform)
    .bind(user_id)
    .bind(chat_id)
    .bind(address)
    .bind(name)
    .bind(language)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    let sql = format!("SELECT {COLS} FROM chat_users WHERE desk = $1 AND platform = $2 AND user_id = $3");
    let r = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk).bind(platform).bind(user_id).fetch_one(&mut *conn).await?;
    from_row(&r)
}

/// The chat requester whose tickets carry `address`.
pub async fn chat_user_by_address(conn: &mut AnyConnection, desk: &str, address: &str) -> Result<Option<ChatUser>> {
    let sql = format!("SELECT {COLS} FROM chat_users WHERE desk = $1 AND address = $2");
    let r = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk).bind(address).fetch_optional(&mut *conn).await?;
    r.as_ref().map(from_row).transpose()
}

pub async fn set_chat_flow(conn: &mut AnyConnection, id: i64, flow: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE chat_users SET flow = $1 WHERE id = $2").bind(flow).bind(id).execute(&mut *conn).await?;
    Ok(())
}

pub async fn set_chat_active(conn: &mut AnyConnection, id: i64, ticket: Option<i64>, now: i64) -> Result<()> {
    sqlx::query("UPDATE chat_users SET active_ticket_id = $1, active_at = $2 WHERE id = $3")
        .bind(ticket)
        .bind(now)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_chat_email(conn: &mut AnyConnection, id: i64, email: Option<&str>) -> Result<()> {
    sqlx::query("UPDATE chat_users SET email = $1 WHERE id = $2").bind(email).bind(id).execute(&mut *conn).await?;
    Ok(())
}

/// An address waiting for its verification code (`/email`): the address, the code's SHA-256,
/// when it expires and how many wrong codes were tried.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EmailCode {
    pub address: String,
    pub code_sha256: String,
    pub expires_at: i64,
    pub attempts: i64,
}

/// Sets (or, with None, clears) the address waiting for its code; a new code restarts the tries.
pub async fn set_chat_email_code(conn: &mut AnyConnection, id: i64, code: Option<&EmailCode>) -> Result<()> {
    sqlx::query(
        "UPDATE chat_users SET email_pending = $1, email_code_sha256 = $2, email_code_expires_at = $3, \
         email_code_attempts = 0 WHERE id = $4",
    )
    .bind(code.map(|c| c.address.as_str()))
    .bind(code.map(|c| c.code_sha256.as_str()))
    .bind(code.map(|c| c.expires_at))
    .bind(id)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The address waiting for its code, if any.
pub async fn chat_email_code(conn: &mut AnyConnection, id: i64) -> Result<Option<EmailCode>> {
    let row = sqlx::query(
        "SELECT email_pending, email_code_sha256, email_code_expires_at, email_code_attempts \
         FROM chat_users WHERE id = $1",
    )
    .bind(id)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(row) = row else { return Ok(None) };
    let address: Option<String> = row.try_get(0)?;
    let hash: Option<String> = row.try_get(1)?;
    let expires: Option<i64> = row.try_get(2)?;
    let attempts: i64 = row.try_get::<i64, _>(3).or_else(|_| row.try_get::<i32, _>(3).map(i64::from))?;
    Ok(match (address, hash, expires) {
        (Some(address), Some(code_sha256), Some(expires_at)) => {
            Some(EmailCode { address, code_sha256, expires_at, attempts })
        }
        _ => None,
    })
}

/// Counts one wrong code.
pub async fn bump_chat_email_attempts(conn: &mut AnyConnection, id: i64) -> Result<()> {
    sqlx::query("UPDATE chat_users SET email_code_attempts = email_code_attempts + 1 WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

pub async fn set_chat_language(conn: &mut AnyConnection, id: i64, language: Language) -> Result<()> {
    sqlx::query("UPDATE chat_users SET language = $1 WHERE id = $2")
        .bind(language.as_str())
        .bind(id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A requester's tickets, newest first; `open_only` leaves out closed and rejected ones.
pub async fn tickets_of_requester(
    conn: &mut AnyConnection,
    desk: &str,
    address: &str,
    open_only: bool,
    limit: i64,
) -> Result<Vec<super::Ticket>> {
    let filter = if open_only { " AND status NOT IN ('closed', 'rejected')" } else { "" };
    let sql = format!(
        "SELECT {} FROM tickets WHERE desk = $1 AND requester_address = $2{filter} ORDER BY id DESC LIMIT $3",
        super::TICKET_COLS
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk).bind(address).bind(limit).fetch_all(&mut *conn).await?;
    rows.iter().map(super::ticket_from).collect()
}

/// Queues a chat delivery: `payload` is the JSON the platform sender reads.
#[allow(clippy::too_many_arguments)]
pub async fn insert_chat_outbox(
    conn: &mut AnyConnection,
    desk: &str,
    ticket_id: Option<i64>,
    message_row: i64,
    channel: &str,
    chat_id: &str,
    payload: &serde_json::Value,
    now: i64,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO outbox (desk, ticket_id, message_row, sender, recipients, status, attempts, next_attempt_at, \
         created_at, channel, payload) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6, $7, $8) RETURNING id",
    )
    .bind(desk)
    .bind(ticket_id)
    .bind(message_row)
    .bind(channel)
    .bind(serde_json::to_string(&[chat_id]).unwrap_or_else(|_| "[]".into()))
    .bind(now)
    .bind(channel)
    .bind(payload.to_string())
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get("id")?)
}

/// Stores the bytes of an attachment that came by chat (mail attachments live in the raw mail):
/// in the files directory first, then the row names them.
pub async fn set_attachment_content(
    conn: &mut AnyConnection,
    files: &super::blobs::Files,
    message_row: i64,
    part: u32,
    bytes: &[u8],
) -> Result<()> {
    let blob = files.put(bytes).await?;
    sqlx::query("UPDATE attachments SET content_blob = $1 WHERE message_row = $2 AND part_index = $3 AND accepted = 1")
        .bind(blob.as_str())
        .bind(message_row)
        .bind(part as i64)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// The row of the message stored under idempotency key `key`.
pub async fn message_row_by_key(conn: &mut AnyConnection, desk: &str, key: &str) -> Result<Option<i64>> {
    let r = sqlx::query("SELECT id FROM messages WHERE desk = $1 AND idempotency_key = $2")
        .bind(desk)
        .bind(key)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(r.map(|r| r.try_get("id")).transpose()?)
}

/// Records that the bot answered group chat `chat_id` that it works in private chat; false when
/// it already had (the chat is answered once).
pub async fn claim_group_notice(
    conn: &mut AnyConnection,
    desk: &str,
    platform: &str,
    chat_id: &str,
    now: i64,
) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO chat_group_notices (desk, platform, chat_id, answered_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (desk, platform, chat_id) DO NOTHING",
    )
    .bind(desk)
    .bind(platform)
    .bind(chat_id)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}

/// Stores the platform's id of a sent chat message on its outbox row.
pub async fn set_outbox_platform_id(pool: &sqlx::AnyPool, id: i64, platform_id: &str) -> Result<()> {
    sqlx::query("UPDATE outbox SET platform_id = $1 WHERE id = $2").bind(platform_id).bind(id).execute(pool).await?;
    Ok(())
}

/// A chat outbox row as its delivery status callbacks see it.
#[derive(Debug, Clone)]
pub struct OutboxDelivery {
    pub id: i64,
    pub ticket_id: Option<i64>,
    pub channel: String,
    pub payload: Option<String>,
    /// The last status recorded (`sent`, `delivered`, `read`, `failed`).
    pub delivery: Option<String>,
}

/// The outbox row of `desk` whose sent message the platform calls `platform_id`.
pub async fn outbox_by_platform_id(
    conn: &mut AnyConnection,
    desk: &str,
    platform_id: &str,
) -> Result<Option<OutboxDelivery>> {
    let r = sqlx::query(
        "SELECT id, ticket_id, channel, payload, delivery FROM outbox WHERE desk = $1 AND platform_id = $2 \
         ORDER BY id LIMIT 1",
    )
    .bind(desk)
    .bind(platform_id)
    .fetch_optional(&mut *conn)
    .await?;
    r.map(|r| {
        Ok(OutboxDelivery {
            id: r.try_get("id")?,
            ticket_id: r.try_get("ticket_id")?,
            channel: r.try_get("channel")?,
            payload: r.try_get("payload")?,
            delivery: r.try_get("delivery")?,
        })
    })
    .transpose()
}

/// Moves row `id`'s delivery status from `from` (None: none yet) to `to`, with the platform's
/// error of a failure; false when another callback changed it first (nothing is done twice).
pub async fn record_delivery(
    conn: &mut AnyConnection,
    id: i64,
    from: Option<&str>,
    to: &str,
    error: Option<&str>,
    now: i64,
) -> Result<bool> {
    let r = sqlx::query(
        "UPDATE outbox SET delivery = $1, delivery_at = $2, delivery_error = $3 \
         WHERE id = $4 AND COALESCE(delivery, '') = $5",
    )
    .bind(to)
    .bind(now)
    .bind(error)
    .bind(id)
    .bind(from.unwrap_or(""))
    .execute(&mut *conn)
    .await?;
    Ok(r.rows_affected() == 1)
}
