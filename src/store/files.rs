//! The files of a ticket: every attachment row of its messages, numbered in the order they
//! arrived (the `N` of `loket tickets attachment NUMBER N` and of the notes in mail), and their
//! bytes — a chat file's in the files directory (or, stored before it, in the row), else cut from
//! the stored raw mail.

use sqlx::{AnyConnection, Row};

use super::StoreError;
use super::blobs::Files;
use crate::mail::attachments;
use crate::mail::parse::sha256_hex;

type Result<T> = std::result::Result<T, StoreError>;

/// One attachment of a ticket.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StoredFile {
    /// Its number on the ticket, from 1, in the order the files arrived.
    pub n: i64,
    pub id: i64,
    pub message_row: i64,
    /// Its position among the attachments of its message, from 0.
    pub position: usize,
    pub filename: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
    /// The desk's attachment policy accepted it.
    pub accepted: bool,
}

/// Every attachment of ticket `ticket_id`'s messages, numbered.
pub async fn ticket_files(conn: &mut AnyConnection, ticket_id: i64) -> Result<Vec<StoredFile>> {
    let rows = sqlx::query(
        "SELECT a.id, a.message_row, a.filename, a.content_type, a.size, a.sha256, a.accepted \
         FROM attachments a JOIN messages m ON m.id = a.message_row WHERE m.ticket_id = $1 \
         ORDER BY a.message_row, a.id",
    )
    .bind(ticket_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out: Vec<StoredFile> = Vec::with_capacity(rows.len());
    for (i, r) in rows.iter().enumerate() {
        let message_row: i64 = r.try_get("message_row")?;
        let position = match out.last() {
            Some(prev) if prev.message_row == message_row => prev.position + 1,
            _ => 0,
        };
        out.push(StoredFile {
            n: i as i64 + 1,
            id: r.try_get("id")?,
            message_row,
            position,
            filename: r.try_get("filename")?,
            content_type: r.try_get("content_type")?,
            size: r.try_get("size")?,
            sha256: r.try_get("sha256")?,
            accepted: r.try_get::<i64, _>("accepted")? != 0,
        });
    }
    Ok(out)
}

/// The bytes of `file` and whether its mail showed it inline: from the row (chat files), else
/// from the stored raw mail; None when neither holds it any more (or the bytes no longer match
/// the recorded SHA-256).
pub async fn file_bytes(conn: &mut AnyConnection, files: &Files, file: &StoredFile) -> Result<Option<(Vec<u8>, bool)>> {
    let r = sqlx::query("SELECT content, content_blob FROM attachments WHERE id = $1")
        .bind(file.id)
        .fetch_optional(&mut *conn)
        .await?;
    if let Some(r) = r
        && let Some(content) = files.read(r.try_get("content")?, r.try_get("content_blob")?).await?
    {
        return Ok(Some((content, false)));
    }
    let r = sqlx::query("SELECT raw, raw_blob FROM messages WHERE id = $1")
        .bind(file.message_row)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(r) = r else { return Ok(None) };
    let Some(raw) = files.read(r.try_get("raw")?, r.try_get("raw_blob")?).await? else { return Ok(None) };
    let found = attachments::extract(&raw).into_iter().nth(file.position);
    Ok(found.filter(|f| sha256_hex(&f.bytes) == file.sha256).map(|f| (f.bytes, f.inline)))
}

/// The bytes of attachment row `id` (a file queued for a chat), as [`file_bytes`] finds them.
pub async fn attachment_bytes(conn: &mut AnyConnection, files: &Files, id: i64) -> Result<Option<Vec<u8>>> {
    let Some(r) = sqlx::query("SELECT message_row, sha256 FROM attachments WHERE id = $1")
        .bind(id)
        .fetch_optional(&mut *conn)
        .await?
    else {
        return Ok(None);
    };
    let message_row: i64 = r.try_get("message_row")?;
    let sha256: String = r.try_get("sha256")?;
    let siblings: Vec<i64> = sqlx::query_scalar("SELECT id FROM attachments WHERE message_row = $1 ORDER BY id")
        .bind(message_row)
        .fetch_all(&mut *conn)
        .await?;
    let position = siblings.iter().position(|s| *s == id).unwrap_or(0);
    let file = StoredFile {
        n: 0,
        id,
        message_row,
        position,
        filename: None,
        content_type: String::new(),
        size: 0,
        sha256,
        accepted: true,
    };
    Ok(file_bytes(conn, files, &file).await?.map(|(bytes, _)| bytes))
}
