//! Routing corrections (issue 18, learning from agents): every `#category`, `#type` and
//! `#priority` an agent sends is kept as a labelled example — the ticket's first message as routing
//! saw it, what the router said, the agent's value and the ticket's labels after the reply —
//! written in the transaction that applies the command. `loket rules suggest` and
//! `loket rules corrections export` read them; nothing here changes how tickets are routed.

use serde::Serialize;
use sqlx::{AnyConnection, AnyPool, Row};

use super::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// Longest stored text of the first message (characters of subject and of body each): the
/// learning needs the words, not a whole forwarded attachment dump.
pub const CORRECTION_TEXT_CHARS: usize = 8_000;

/// One correction to record.
#[derive(Debug, Clone)]
pub struct NewCorrection<'a> {
    pub desk: &'a str,
    pub ticket_id: i64,
    pub ticket_number: &'a str,
    /// `category`, `type` or `priority`.
    pub field: &'static str,
    /// What the router said for this field (`category/subcategory`, a type, a priority), if known.
    pub routed: Option<String>,
    /// The ticket's value before the command.
    pub previous: Option<String>,
    pub corrected: String,
    /// The ticket's labels once the reply is applied (a complete label for evaluation).
    pub category: &'a str,
    pub subcategory: &'a str,
    pub ticket_type: Option<&'a str>,
    pub subject: &'a str,
    /// The body as routing sees it (cut by the reply trimmer).
    pub body: &'a str,
    pub sender_domain: Option<&'a str>,
    pub agent: &'a str,
    pub now: i64,
}

/// A recorded correction.
#[derive(Debug, Clone, Serialize)]
pub struct Correction {
    pub id: i64,
    pub desk: String,
    pub ticket_number: String,
    pub field: String,
    pub routed: Option<String>,
    pub previous: Option<String>,
    pub corrected: String,
    pub category: String,
    pub subcategory: String,
    pub ticket_type: Option<String>,
    pub subject: String,
    pub body: String,
    pub sender_domain: Option<String>,
    pub agent: String,
    pub created_at: i64,
}

fn cut(s: &str) -> &str {
    match s.char_indices().nth(CORRECTION_TEXT_CHARS) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// The ticket's first message as stored (subject, body, sender) and the router's decision (the
/// `routed` event's detail), found through the ticket's `created` event: a merge moves messages
/// between tickets, the event stays.
pub async fn first_message_and_route(
    conn: &mut AnyConnection,
    ticket_id: i64,
) -> Result<Option<(String, String, Option<String>, Option<serde_json::Value>)>> {
    let events = sqlx::query(
        "SELECT kind, detail FROM ticket_events WHERE ticket_id = $1 AND kind IN ('created', 'routed') ORDER BY id",
    )
    .bind(ticket_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut message = None;
    let mut routed = None;
    for r in events {
        let kind: String = r.try_get("kind")?;
        let detail: String = r.try_get("detail")?;
        let Ok(v) = serde_json::from_str::<serde_json::Value>(&detail) else { continue };
        match kind.as_str() {
            "created" if message.is_none() => message = v.get("message").and_then(|m| m.as_i64()),
            "routed" if routed.is_none() => routed = Some(v),
            _ => {}
        }
    }
    let Some(row) = message else { return Ok(None) };
    let m = sqlx::query("SELECT subject, body_text, from_address FROM messages WHERE id = $1")
        .bind(row)
        .fetch_optional(&mut *conn)
        .await?;
    let Some(m) = m else { return Ok(None) };
    Ok(Some((m.try_get("subject")?, m.try_get("body_text")?, m.try_get("from_address")?, routed)))
}

pub async fn insert_correction(conn: &mut AnyConnection, c: &NewCorrection<'_>) -> Result<()> {
    sqlx::query(
        "INSERT INTO routing_corrections (desk, ticket_id, ticket_number, field, routed, previous, corrected, \
         category, subcategory, ticket_type, subject, body, sender_domain, agent, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)",
    )
    .bind(c.desk)
    .bind(c.ticket_id)
    .bind(c.ticket_number)
    .bind(c.field)
    .bind(c.routed.as_deref())
    .bind(c.previous.as_deref())
    .bind(c.corrected.as_str())
    .bind(c.category)
    .bind(c.subcategory)
    .bind(c.ticket_type)
    .bind(cut(c.subject))
    .bind(cut(c.body))
    .bind(c.sender_domain)
    .bind(c.agent)
    .bind(c.now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// A desk's corrections recorded at or after `since` (UTC milliseconds), oldest first.
pub async fn corrections(pool: &AnyPool, desk: &str, since: i64) -> Result<Vec<Correction>> {
    let rows = sqlx::query(
        "SELECT id, desk, ticket_number, field, routed, previous, corrected, category, subcategory, ticket_type, \
         subject, body, sender_domain, agent, created_at FROM routing_corrections \
         WHERE desk = $1 AND created_at >= $2 ORDER BY id",
    )
    .bind(desk)
    .bind(since)
    .fetch_all(pool)
    .await?;
    rows.iter()
        .map(|r| {
            Ok(Correction {
                id: r.try_get("id")?,
                desk: r.try_get("desk")?,
                ticket_number: r.try_get("ticket_number")?,
                field: r.try_get("field")?,
                routed: r.try_get("routed")?,
                previous: r.try_get("previous")?,
                corrected: r.try_get("corrected")?,
                category: r.try_get("category")?,
                subcategory: r.try_get("subcategory")?,
                ticket_type: r.try_get("ticket_type")?,
                subject: r.try_get("subject")?,
                body: r.try_get("body")?,
                sender_domain: r.try_get("sender_domain")?,
                agent: r.try_get("agent")?,
                created_at: r.try_get("created_at")?,
            })
        })
        .collect()
}
