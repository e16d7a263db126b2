//! Every SQL statement Loket runs, in the common subset of SQLite and PostgreSQL (`$N`
//! placeholders, `RETURNING`, `ON CONFLICT`). Functions that change data take a connection inside
//! the caller's transaction; read-only ones take the pool.

use serde::Serialize;
use sqlx::{AnyConnection, AnyPool, Row, any::AnyRow};

use super::blobs::Files;
use super::{Backend, StoreError};
use crate::domain::{
    Channel, Direction, EmailAddress, Impact, Language, PendingReason, Priority, TicketStatus, TicketType,
};
use crate::ticket::TicketNumber;
pub use crate::ticket::{Ticket, TicketPatch};

type Result<T> = std::result::Result<T, StoreError>;

pub(super) const TICKET_COLS: &str = "id, desk, number, category, subcategory, ticket_type, impact, status, channel, inbox, \
     subject, requester_address, requester_name, language, created_at, updated_at, assignee, group_id, priority, \
     pending_reason, resolved_at, closed_at, first_response_at, linked_ticket_id, rating, rating_comment, \
     rating_requested_at";

/// A closed-set column decoded into its enum; an unknown value is inconsistent data.
fn decode<T>(r: &AnyRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<T> {
    let s: String = r.try_get(col)?;
    parse(&s).ok_or_else(|| StoreError::Corrupt(format!("tickets.{col}: unknown value `{s}`")))
}

fn decode_opt<T>(r: &AnyRow, col: &str, parse: fn(&str) -> Option<T>) -> Result<Option<T>> {
    let s: Option<String> = r.try_get(col)?;
    s.map(|s| parse(&s).ok_or_else(|| StoreError::Corrupt(format!("tickets.{col}: unknown value `{s}`")))).transpose()
}

/// Decodes a `tickets` row once, here: everything past the store sees typed values.
pub(super) fn ticket_from(r: &AnyRow) -> Result<Ticket> {
    let rating: Option<i64> = r.try_get("rating")?;
    Ok(Ticket {
        id: r.try_get("id")?,
        desk: r.try_get("desk")?,
        number: decode(r, "number", TicketNumber::parse)?,
        category: r.try_get("category")?,
        subcategory: r.try_get("subcategory")?,
        ticket_type: decode_opt(r, "ticket_type", TicketType::parse)?,
        impact: decode_opt(r, "impact", Impact::parse)?,
        status: decode(r, "status", TicketStatus::parse)?,
        channel: decode(r, "channel", Channel::parse)?,
        inbox: r.try_get("inbox")?,
        subject: r.try_get("subject")?,
        requester_address: decode(r, "requester_address", |s| EmailAddress::parse(s).ok())?,
        requester_name: r.try_get("requester_name")?,
        language: decode(r, "language", Language::parse)?,
        created_at: r.try_get("created_at")?,
        updated_at: r.try_get("updated_at")?,
        assignee: r.try_get("assignee")?,
        group_id: r.try_get("group_id")?,
        priority: decode_opt(r, "priority", Priority::parse)?,
        pending_reason: decode_opt(r, "pending_reason", PendingReason::parse)?,
        resolved_at: r.try_get("resolved_at")?,
        closed_at: r.try_get("closed_at")?,
        first_response_at: r.try_get("first_response_at")?,
        linked_ticket_id: r.try_get("linked_ticket_id")?,
        rating: rating
            .map(|v| u8::try_from(v).map_err(|_| StoreError::Corrupt(format!("tickets.rating: {v} out of range"))))
            .transpose()?,
        rating_comment: r.try_get("rating_comment")?,
        rating_requested_at: r.try_get("rating_requested_at")?,
    })
}

#[derive(Debug, Clone)]
pub struct NewTicket<'a> {
    pub desk: &'a str,
    pub number: &'a str,
    pub category: &'a str,
    pub subcategory: &'a str,
    pub ticket_type: Option<TicketType>,
    pub impact: Option<Impact>,
    pub status: TicketStatus,
    pub channel: Channel,
    pub inbox: Option<&'a str>,
    pub subject: &'a str,
    pub requester_address: &'a str,
    pub requester_name: Option<&'a str>,
    pub language: Language,
    pub group_id: Option<&'a str>,
    pub pending_reason: Option<PendingReason>,
    pub linked_ticket_id: Option<i64>,
    pub priority: Option<Priority>,
    /// An incident's urgency, kept for a later change of impact.
    pub urgency: Option<Impact>,
    /// When to remind a requester whose request waits on them.
    pub remind_at: Option<i64>,
    pub now: i64,
}

#[derive(Debug, Clone)]
pub struct NewMessage<'a> {
    pub desk: &'a str,
    pub ticket_id: Option<i64>,
    pub direction: &'a str,
    pub channel: &'a str,
    pub inbox: Option<&'a str>,
    pub idempotency_key: &'a str,
    pub message_id: Option<&'a str>,
    pub kind: &'a str,
    pub action: &'a str,
    pub reason: Option<&'a str>,
    pub peer_address: Option<&'a str>,
    pub from_address: Option<&'a str>,
    pub to_addresses: &'a [String],
    pub subject: &'a str,
    pub body_text: &'a str,
    pub raw: Option<&'a [u8]>,
    pub size: usize,
    pub auto_reply: bool,
    pub now: i64,
}

/// What an earlier delivery of the same message became.
#[derive(Debug, Clone)]
pub struct Seen {
    pub ticket_number: Option<TicketNumber>,
    pub quarantined: bool,
}

/// The duplicate check as three columns (`stored`, `number`, `quarantined`) of a `SELECT`, for
/// `desk` = `$1` and the idempotency key `$2`.
const SEEN_COLUMNS: &str = "(SELECT COUNT(*) FROM messages WHERE desk = $1 AND idempotency_key = $2) AS stored, \
     (SELECT t.number FROM messages m JOIN tickets t ON t.id = m.ticket_id \
      WHERE m.desk = $1 AND m.idempotency_key = $2) AS number, \
     (SELECT COUNT(*) FROM quarantine WHERE desk = $1 AND idempotency_key = $2 AND released_at IS NULL) \
     AS quarantined";

/// The stored message (and its ticket) first, else a quarantined copy.
fn seen_from(r: &AnyRow) -> Result<Option<Seen>> {
    let (stored, quarantined): (i64, i64) = (r.try_get("stored")?, r.try_get("quarantined")?);
    Ok(if stored > 0 {
        Some(Seen { ticket_number: decode_opt(r, "number", TicketNumber::parse)?, quarantined: false })
    } else if quarantined > 0 {
        Some(Seen { ticket_number: None, quarantined: true })
    } else {
        None
    })
}

/// Looks the idempotency key up among messages and quarantined mail.
pub async fn find_seen(conn: &mut AnyConnection, desk: &str, key: &str) -> Result<Option<Seen>> {
    let sql = format!("SELECT {SEEN_COLUMNS}");
    let r = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk).bind(key).fetch_one(&mut *conn).await?;
    seen_from(&r)
}

pub async fn ticket_by_number(conn: &mut AnyConnection, desk: &str, number: &TicketNumber) -> Result<Option<Ticket>> {
    let sql = format!("SELECT {TICKET_COLS} FROM tickets WHERE desk = $1 AND number = $2");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk).bind(number.as_str()).fetch_optional(&mut *conn).await?;
    row.as_ref().map(ticket_from).transpose()
}

/// `$first, $first+1, …` for `n` bound values.
pub(super) fn placeholders(first: usize, n: usize) -> String {
    (first..first + n).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
}

/// The most rows one multi-row statement writes ([`row_chunks`]).
const MOST_ROWS: usize = 64;

/// `items` in order, in chunks whose lengths are powers of two up to [`MOST_ROWS`] (the largest
/// that fits, then the largest that fits the rest): a multi-row statement then has one of seven
/// texts, each prepared once per connection and kept in its statement cache. A statement of any
/// other length was prepared anew, and its parameters read, every time it ran (a seventh of the
/// pipeline's writer in the Maildir benchmark).
pub(super) fn row_chunks<T>(mut items: &[T]) -> impl Iterator<Item = &[T]> {
    std::iter::from_fn(move || {
        let fits = items.len().min(MOST_ROWS);
        if fits == 0 {
            return None;
        }
        let (chunk, rest) = items.split_at(1 << fits.ilog2());
        items = rest;
        Some(chunk)
    })
}

/// The length `ids` is padded to in an `IN` list ([`bind_padded`]): the next power of two, so
/// that few statement shapes are prepared and cached.
fn padded_len(ids: &[i64]) -> usize {
    ids.len().next_power_of_two()
}

/// Binds `ids` and then their first again up to [`padded_len`] (a repeated id in `IN` is the
/// same id). `ids` is not empty.
fn bind_padded<'q>(
    mut q: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments>,
    ids: &[i64],
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments> {
    for id in ids.iter().copied().chain(std::iter::repeat(ids[0])).take(padded_len(ids)) {
        q = q.bind(id);
    }
    q
}

/// The tickets of `desk` with one of `numbers`, in one query.
pub async fn tickets_by_numbers(conn: &mut AnyConnection, desk: &str, numbers: &[TicketNumber]) -> Result<Vec<Ticket>> {
    if numbers.is_empty() {
        return Ok(Vec::new());
    }
    let sql =
        format!("SELECT {TICKET_COLS} FROM tickets WHERE desk = $1 AND number IN ({})", placeholders(2, numbers.len()));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk);
    for n in numbers {
        q = q.bind(n.as_str());
    }
    q.fetch_all(&mut *conn).await?.iter().map(ticket_from).collect()
}

/// For each of `ids` that is the Message-ID of a message of `desk` on a ticket: the id and the
/// ticket of the most recent such message, in one query.
pub async fn tickets_by_message_ids(
    conn: &mut AnyConnection,
    desk: &str,
    ids: &[String],
) -> Result<Vec<(String, Ticket)>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    let sql = format!(
        "SELECT m.message_id AS found_by, {} FROM tickets t JOIN messages m ON m.ticket_id = t.id \
         WHERE m.desk = $1 AND m.message_id IN ({}) ORDER BY m.id DESC",
        TICKET_COLS.split(", ").map(|c| format!("t.{c}")).collect::<Vec<_>>().join(", "),
        placeholders(2, ids.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk);
    for id in ids {
        q = q.bind(id);
    }
    let mut out: Vec<(String, Ticket)> = Vec::new();
    for r in q.fetch_all(&mut *conn).await? {
        let id: String = r.try_get("found_by")?;
        if !out.iter().any(|(m, _)| *m == id) {
            out.push((id, ticket_from(&r)?));
        }
    }
    Ok(out)
}

/// The next sequence number of `desk` in `year`; serialised by the row lock (PostgreSQL) or the
/// write transaction (SQLite), so never handed out twice.
pub async fn next_ticket_seq(conn: &mut AnyConnection, desk: &str, year: i32) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO ticket_counters (desk, year, last) VALUES ($1, $2, 1) \
         ON CONFLICT (desk, year) DO UPDATE SET last = ticket_counters.last + 1 RETURNING last",
    )
    .bind(desk)
    .bind(year as i64)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get("last")?)
}

/// Sets the desk's ticket counter for `year` to `last`: a batch that numbered several tickets
/// from one [`next_ticket_seq`] writes where it got to, once, before its commit.
pub async fn set_ticket_seq(conn: &mut AnyConnection, desk: &str, year: i32, last: i64) -> Result<()> {
    sqlx::query("UPDATE ticket_counters SET last = $3 WHERE desk = $1 AND year = $2")
        .bind(desk)
        .bind(year as i64)
        .bind(last)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Inserts a ticket and returns it as stored (one statement).
pub async fn insert_ticket(conn: &mut AnyConnection, t: &NewTicket<'_>) -> Result<Ticket> {
    let sql = format!(
        "INSERT INTO tickets (desk, number, category, subcategory, ticket_type, impact, status, channel, inbox, \
         subject, requester_address, requester_name, language, created_at, updated_at, group_id, pending_reason, \
         linked_ticket_id, priority, urgency, remind_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $14, $15, $16, $17, $18, $19, $20) \
         RETURNING {TICKET_COLS}"
    );
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(t.desk)
        .bind(t.number)
        .bind(t.category)
        .bind(t.subcategory)
        .bind(t.ticket_type.map(|v| v.as_str()))
        .bind(t.impact.map(|v| v.as_str()))
        .bind(t.status.as_str())
        .bind(t.channel.as_str())
        .bind(t.inbox)
        .bind(t.subject)
        .bind(t.requester_address)
        .bind(t.requester_name)
        .bind(t.language.as_str())
        .bind(t.now)
        .bind(t.group_id)
        .bind(t.pending_reason.map(|v| v.as_str()))
        .bind(t.linked_ticket_id)
        .bind(t.priority.map(|v| v.as_str()))
        .bind(t.urgency.map(|v| v.as_str()))
        .bind(t.remind_at)
        .fetch_one(&mut *conn)
        .await?;
    ticket_from(&r)
}

pub async fn touch_ticket(conn: &mut AnyConnection, ticket_id: i64, now: i64) -> Result<()> {
    sqlx::query("UPDATE tickets SET updated_at = $1 WHERE id = $2")
        .bind(now)
        .bind(ticket_id)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// A mail Loket composed (an acknowledgement, a notification, a relayed reply) of at most this many
/// bytes stays in its row, beside its text (`body_text`, most of it already): a file for each cost
/// a new ticket two of its three file writes and their flushes. What arrives, and a larger
/// composed mail (a notification that carries the requester's files), goes to the files
/// directory, so the database does not grow by the mail people send.
pub const INLINE_COMPOSED_MAX: usize = 32 * 1024;

/// Records a message. Its raw bytes go to the files directory first (`files`), and the row names
/// them, so a crash before the commit leaves at most an unreferenced file; a small composed mail
/// stays in the row ([`INLINE_COMPOSED_MAX`]).
pub async fn insert_message(conn: &mut AnyConnection, files: &Files, m: &NewMessage<'_>) -> Result<i64> {
    let to = serde_json::to_string(m.to_addresses).unwrap_or_else(|_| "[]".into());
    let (raw, raw_blob) = match m.raw {
        Some(raw) if m.direction == Direction::Outbound.as_str() => composed_place(files, raw).await?,
        Some(raw) => (None, Some(files.put(raw).await?)),
        None => (None, None),
    };
    let r = sqlx::query(
        "INSERT INTO messages (desk, ticket_id, direction, channel, inbox, idempotency_key, message_id, kind, action, \
         reason, peer_address, from_address, to_addresses, subject, body_text, raw, raw_blob, size, auto_reply, \
         created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20) RETURNING id",
    )
    .bind(m.desk)
    .bind(m.ticket_id)
    .bind(m.direction)
    .bind(m.channel)
    .bind(m.inbox)
    .bind(m.idempotency_key)
    .bind(m.message_id)
    .bind(m.kind)
    .bind(m.action)
    .bind(m.reason)
    .bind(m.peer_address)
    .bind(m.from_address)
    .bind(to)
    .bind(m.subject)
    .bind(m.body_text)
    .bind(raw.map(<[u8]>::to_vec))
    .bind(raw_blob.as_ref().map(|b| b.as_str().to_string()))
    .bind(m.size as i64)
    .bind(m.auto_reply as i64)
    .bind(m.now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get("id")?)
}

/// Where a composed mail's bytes go: in its row, or to the files directory when larger than
/// [`INLINE_COMPOSED_MAX`].
async fn composed_place<'a>(files: &Files, raw: &'a [u8]) -> Result<(Option<&'a [u8]>, Option<super::blobs::BlobId>)> {
    Ok(if raw.len() <= INLINE_COMPOSED_MAX { (Some(raw), None) } else { (None, Some(files.put(raw).await?)) })
}

/// Composed mails' bytes (row, bytes) for outbound rows recorded without them (composed behind
/// the pipeline's writer), with their sizes: one statement for up to 64 rows ([`row_chunks`]).
pub async fn set_composed_raw(conn: &mut AnyConnection, files: &Files, mails: &[(i64, Vec<u8>)]) -> Result<()> {
    for chunk in row_chunks(mails) {
        let mut placed = Vec::with_capacity(chunk.len());
        for (row, raw) in chunk {
            let (inline, blob) = composed_place(files, raw).await?;
            placed.push((*row, inline.map(<[u8]>::to_vec), blob.map(|b| b.as_str().to_string()), raw.len() as i64));
        }
        let values: Vec<String> = (0..chunk.len())
            .map(|i| format!("(${}, ${}, ${}, ${})", 4 * i + 1, 4 * i + 2, 4 * i + 3, 4 * i + 4))
            .collect();
        // `VALUES` names its columns column1… on SQLite and PostgreSQL alike.
        let sql = format!(
            "UPDATE messages SET raw = v.column2, raw_blob = v.column3, size = v.column4 FROM (VALUES {}) AS v \
             WHERE messages.id = v.column1",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for (row, inline, blob, size) in placed {
            q = q.bind(row).bind(inline).bind(blob).bind(size);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_attachment(
    conn: &mut AnyConnection,
    message_row: i64,
    part_index: u32,
    filename: Option<&str>,
    content_type: &str,
    size: usize,
    sha256: &str,
    refusal: Option<&str>,
) -> Result<()> {
    sqlx::query(
        "INSERT INTO attachments (message_row, part_index, filename, content_type, size, sha256, accepted, refusal) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(message_row)
    .bind(part_index as i64)
    .bind(filename)
    .bind(content_type)
    .bind(size as i64)
    .bind(sha256)
    .bind(refusal.is_none() as i64)
    .bind(refusal)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

pub async fn ticket_by_id(conn: &mut AnyConnection, id: i64) -> Result<Option<Ticket>> {
    let sql = format!("SELECT {TICKET_COLS} FROM tickets WHERE id = $1");
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(id).fetch_optional(&mut *conn).await?;
    row.as_ref().map(ticket_from).transpose()
}

/// One value of an UPDATE's SET list.
enum SetValue<'a> {
    Text(Option<&'a str>),
    Int(Option<i64>),
}

/// The scheduler's timers of a ticket that a change moves: `Some(Some(at))` sets, `Some(None)`
/// clears, `None` leaves.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Timers {
    pub auto_close_at: Option<Option<i64>>,
    pub remind_at: Option<Option<i64>>,
}

/// Writes a patch (and `updated_at`) in one UPDATE. Column names are fixed here; values are
/// bound.
pub async fn update_ticket(conn: &mut AnyConnection, id: i64, p: &TicketPatch, now: i64) -> Result<()> {
    update_ticket_and_timers(conn, id, p, Timers::default(), now).await
}

/// [`update_ticket`] that also moves the scheduler's timers, in the same statement.
pub async fn update_ticket_and_timers(
    conn: &mut AnyConnection,
    id: i64,
    p: &TicketPatch,
    timers: Timers,
    now: i64,
) -> Result<()> {
    use SetValue::{Int, Text};
    let mut set: Vec<(&'static str, SetValue<'_>)> = Vec::new();
    if let Some(v) = timers.auto_close_at {
        set.push(("auto_close_at", Int(v)));
    }
    if let Some(v) = timers.remind_at {
        set.push(("remind_at", Int(v)));
    }
    if let Some(v) = p.status {
        set.push(("status", Text(Some(v.as_str()))));
    }
    if let Some(v) = p.pending_reason {
        set.push(("pending_reason", Text(v.map(|v| v.as_str()))));
    }
    if let Some(v) = &p.assignee {
        set.push(("assignee", Text(v.as_deref())));
    }
    if let Some(v) = &p.group_id {
        set.push(("group_id", Text(v.as_deref())));
    }
    if let Some(v) = p.priority {
        set.push(("priority", Text(Some(v.as_str()))));
    }
    if let Some((c, s)) = &p.category {
        set.push(("category", Text(Some(c))));
        set.push(("subcategory", Text(Some(s))));
    }
    if let Some(v) = p.ticket_type {
        set.push(("ticket_type", Text(Some(v.as_str()))));
    }
    if let Some(v) = p.impact {
        set.push(("impact", Text(v.map(|v| v.as_str()))));
    }
    if let Some(v) = p.resolved_at {
        set.push(("resolved_at", Int(v)));
    }
    if let Some(v) = p.closed_at {
        set.push(("closed_at", Int(v)));
    }
    if let Some((r, c)) = &p.rating {
        set.push(("rating", Int(Some(*r as i64))));
        set.push(("rating_comment", Text(Some(c))));
    }
    if let Some(v) = p.rating_requested_at {
        set.push(("rating_requested_at", Int(Some(v))));
    }
    set.push(("updated_at", Int(Some(now))));
    let mut cols: Vec<String> = set.iter().enumerate().map(|(i, (c, _))| format!("{c} = ${}", i + 1)).collect();
    let first_response = p.first_response_at;
    if first_response.is_some() {
        cols.push(format!("first_response_at = COALESCE(first_response_at, ${})", set.len() + 1));
    }
    let id_param = set.len() + 1 + usize::from(first_response.is_some());
    let sql = format!("UPDATE tickets SET {} WHERE id = ${id_param}", cols.join(", "));
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for (_, v) in set {
        q = match v {
            Text(s) => q.bind(s),
            Int(n) => q.bind(n),
        };
    }
    if let Some(v) = first_response {
        q = q.bind(v);
    }
    q.bind(id).execute(&mut *conn).await?;
    Ok(())
}

/// Message-IDs of a ticket's messages that `peer` sent or was sent (so has seen), oldest first,
/// at most `limit` (the newest ones).
pub async fn thread_ids_seen_by(
    conn: &mut AnyConnection,
    ticket_id: i64,
    peer: &str,
    limit: i64,
) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT message_id FROM messages WHERE ticket_id = $1 AND peer_address = $2 AND message_id IS NOT NULL \
         ORDER BY id DESC LIMIT $3",
    )
    .bind(ticket_id)
    .bind(peer)
    .bind(limit)
    .fetch_all(&mut *conn)
    .await?;
    let mut ids: Vec<String> = rows.iter().filter_map(|r| r.try_get::<String, _>("message_id").ok()).collect();
    ids.reverse();
    Ok(ids)
}

/// The text of the message that opened a ticket (its first inbound message).
pub async fn opening_text(conn: &mut AnyConnection, ticket_id: i64) -> Result<String> {
    let r = sqlx::query("SELECT body_text FROM messages WHERE ticket_id = $1 AND direction = 'in' ORDER BY id LIMIT 1")
        .bind(ticket_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(r.and_then(|r| r.try_get("body_text").ok()).unwrap_or_default())
}

/// Adds participants to a ticket (already present ones are kept as they are).
pub async fn insert_participants(
    conn: &mut AnyConnection,
    ticket_id: i64,
    addresses: &[String],
    source: &str,
    now: i64,
) -> Result<()> {
    if addresses.is_empty() {
        return Ok(());
    }
    let values: Vec<String> = (0..addresses.len()).map(|i| format!("($1, ${}, $2, $3)", i + 4)).collect();
    let sql = format!(
        "INSERT INTO ticket_participants (ticket_id, address, source, created_at) VALUES {} \
         ON CONFLICT (ticket_id, address) DO NOTHING",
        values.join(", ")
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(ticket_id).bind(source).bind(now);
    for a in addresses {
        q = q.bind(a.as_str());
    }
    q.execute(&mut *conn).await?;
    Ok(())
}

/// The participants of a ticket (besides its requester and the agents).
pub async fn participants(conn: &mut AnyConnection, ticket_id: i64) -> Result<Vec<EmailAddress>> {
    let rows = sqlx::query("SELECT address FROM ticket_participants WHERE ticket_id = $1 ORDER BY address")
        .bind(ticket_id)
        .fetch_all(&mut *conn)
        .await?;
    Ok(rows
        .iter()
        .filter_map(|r| r.try_get::<String, _>("address").ok())
        .filter_map(|a| EmailAddress::parse(&a).ok())
        .collect())
}

/// Tickets `requester` opened at `desk` since `since` (flood control).
pub async fn count_tickets_since(conn: &mut AnyConnection, desk: &str, requester: &str, since: i64) -> Result<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM tickets WHERE desk = $1 AND requester_address = $2 AND created_at >= $3",
    )
    .bind(desk)
    .bind(requester)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get("n")?)
}

/// One sender's recent load at a desk, for the limits a new request checks.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SenderLoad {
    /// Tickets they opened (the flood limit).
    pub tickets_opened: i64,
    /// Automatic replies sent to them (the acknowledgement limit).
    pub auto_replies: i64,
    /// Messages received from them (the agents' notification limit).
    pub inbound: i64,
}

/// A sender's load as three columns (`opened`, `auto_replies`, `inbound`) of a `SELECT`, for
/// `desk` = `$1`, the address `address` (an SQL expression of this file's own: a placeholder or
/// a column) and `since` the placeholder `$since`.
fn sender_load_columns(address: &str, since: usize) -> String {
    format!(
        "(SELECT COUNT(*) FROM tickets WHERE desk = $1 AND requester_address = {address} AND created_at >= ${since}) \
         AS opened, \
         (SELECT COUNT(*) FROM messages WHERE desk = $1 AND peer_address = {address} AND auto_reply = 1 \
          AND created_at >= ${since}) AS auto_replies, \
         (SELECT COUNT(*) FROM messages WHERE desk = $1 AND peer_address = {address} AND direction = 'in' \
          AND created_at >= ${since}) AS inbound"
    )
}

fn sender_load_from(r: &AnyRow) -> Result<SenderLoad> {
    Ok(SenderLoad {
        tickets_opened: r.try_get("opened")?,
        auto_replies: r.try_get("auto_replies")?,
        inbound: r.try_get("inbound")?,
    })
}

/// [`count_tickets_since`], [`count_auto_replies`] and [`count_inbound_since`] in one query.
pub async fn sender_load(conn: &mut AnyConnection, desk: &str, address: &str, since: i64) -> Result<SenderLoad> {
    let sql = format!("SELECT {}", sender_load_columns("$2", 3));
    let r = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk).bind(address).bind(since).fetch_one(&mut *conn).await?;
    sender_load_from(&r)
}

/// [`find_seen`] and [`sender_load`] in one query: a new request's first two reads in one round
/// trip (on PostgreSQL, each statement is one).
pub async fn find_seen_and_load(
    conn: &mut AnyConnection,
    desk: &str,
    key: &str,
    address: &str,
    since: i64,
) -> Result<(Option<Seen>, SenderLoad)> {
    let sql = format!("SELECT {SEEN_COLUMNS}, {}", sender_load_columns("$3", 4));
    let r = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(desk)
        .bind(key)
        .bind(address)
        .bind(since)
        .fetch_one(&mut *conn)
        .await?;
    Ok((seen_from(&r)?, sender_load_from(&r)?))
}

/// Of `keys`, those a message or an unreleased quarantined copy at `desk` already has: many
/// messages' duplicate checks in one query (a key not returned is not stored). For the exact
/// answer about one key ([`Seen`], with its ticket), [`find_seen`].
pub async fn stored_keys(
    conn: &mut AnyConnection,
    desk: &str,
    keys: &[&str],
) -> Result<std::collections::HashSet<String>> {
    let Some(keys) = padded(keys) else { return Ok(Default::default()) };
    let list = placeholders(2, keys.len());
    let sql = format!(
        "SELECT idempotency_key AS k FROM messages WHERE desk = $1 AND idempotency_key IN ({list}) \
         UNION SELECT idempotency_key AS k FROM quarantine WHERE desk = $1 AND released_at IS NULL \
         AND idempotency_key IN ({list})"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk);
    for k in keys {
        q = q.bind(k);
    }
    q.fetch_all(&mut *conn).await?.iter().map(|r| Ok(r.try_get("k")?)).collect()
}

/// `values` (not empty) made as long as the next power of two by repeating the last: a query
/// for many values then has one of a few shapes, each prepared once per connection, instead of
/// one shape for every length (each a statement to prepare, crowding the statement cache).
fn padded<'v>(values: &[&'v str]) -> Option<Vec<&'v str>> {
    let last = *values.last()?;
    let mut all = values.to_vec();
    all.resize(values.len().next_power_of_two(), last);
    Some(all)
}

/// [`sender_load`] of each of `addresses` at `desk` since `since`, in one query.
pub async fn sender_loads(
    conn: &mut AnyConnection,
    desk: &str,
    addresses: &[&str],
    since: i64,
) -> Result<std::collections::HashMap<String, SenderLoad>> {
    let Some(addresses) = padded(addresses) else { return Ok(Default::default()) };
    // `a.column1`: the name both SQLite and PostgreSQL give a VALUES list's first column.
    let values = (3..3 + addresses.len()).map(|i| format!("(${i})")).collect::<Vec<_>>().join(", ");
    let columns = sender_load_columns("a.column1", 2);
    let sql = format!("SELECT a.column1 AS address, {columns} FROM (VALUES {values}) AS a");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk).bind(since);
    for a in addresses {
        q = q.bind(a);
    }
    q.fetch_all(&mut *conn).await?.iter().map(|r| Ok((r.try_get("address")?, sender_load_from(r)?))).collect()
}

/// Tickets `agent` opened for other people at `desk` since `since` (their `on_behalf` events).
pub async fn behalf_openings_since(conn: &mut AnyConnection, desk: &str, agent: &str, since: i64) -> Result<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM ticket_events e JOIN tickets t ON t.id = e.ticket_id \
         WHERE e.actor = $2 AND e.kind = 'on_behalf' AND e.at >= $3 AND t.desk = $1",
    )
    .bind(desk)
    .bind(agent)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get("n")?)
}

/// Inbound messages from `peer` at `desk` since `since` (flood control).
pub async fn count_inbound_since(conn: &mut AnyConnection, desk: &str, peer: &str, since: i64) -> Result<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM messages WHERE desk = $1 AND peer_address = $2 AND direction = 'in' \
         AND created_at >= $3",
    )
    .bind(desk)
    .bind(peer)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get("n")?)
}

/// The requester's most recently created ticket at `desk` that is not closed or rejected.
pub async fn latest_open_ticket(conn: &mut AnyConnection, desk: &str, requester: &str) -> Result<Option<Ticket>> {
    let sql = format!(
        "SELECT {TICKET_COLS} FROM tickets WHERE desk = $1 AND requester_address = $2 \
         AND status NOT IN ('closed', 'rejected') ORDER BY created_at DESC, id DESC LIMIT 1"
    );
    let row = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(desk).bind(requester).fetch_optional(&mut *conn).await?;
    row.as_ref().map(ticket_from).transpose()
}

/// Message-ID of the requester's latest message on a ticket.
pub async fn last_inbound_id(conn: &mut AnyConnection, ticket_id: i64, from: &str) -> Result<Option<String>> {
    let r = sqlx::query(
        "SELECT message_id FROM messages WHERE ticket_id = $1 AND direction = 'in' AND from_address = $2 \
         AND message_id IS NOT NULL ORDER BY id DESC LIMIT 1",
    )
    .bind(ticket_id)
    .bind(from)
    .fetch_optional(&mut *conn)
    .await?;
    Ok(r.and_then(|r| r.try_get("message_id").ok()))
}

/// Appends an audit event (invariant 6).
/// One audit event to record.
#[derive(Debug, Clone)]
pub struct NewEvent<'a> {
    pub ticket_id: i64,
    pub actor: &'a str,
    pub kind: &'a str,
    pub detail: serde_json::Value,
}

/// Records events in one statement, in order.
pub async fn insert_events(conn: &mut AnyConnection, now: i64, channel: &str, events: &[NewEvent<'_>]) -> Result<()> {
    let rows: Vec<EventToInsert> = events.iter().map(|e| EventToInsert::new(now, channel, e)).collect();
    insert_event_rows(conn, &rows).await
}

/// An event as [`insert_event_rows`] writes it, owned (a batch keeps its events until its commit).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EventToInsert {
    pub ticket_id: i64,
    pub at: i64,
    pub actor: String,
    pub channel: String,
    pub kind: String,
    pub detail: String,
}

impl EventToInsert {
    pub fn new(now: i64, channel: &str, e: &NewEvent<'_>) -> Self {
        Self {
            ticket_id: e.ticket_id,
            at: now,
            actor: e.actor.to_string(),
            channel: channel.to_string(),
            kind: e.kind.to_string(),
            detail: e.detail.to_string(),
        }
    }
}

/// Records events, in order: one statement for up to 64 ([`row_chunks`]).
pub async fn insert_event_rows(conn: &mut AnyConnection, events: &[EventToInsert]) -> Result<()> {
    for chunk in row_chunks(events) {
        let rows: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = |k: usize| 6 * i + k;
                format!("(${}, ${}, ${}, ${}, ${}, ${})", p(1), p(2), p(3), p(4), p(5), p(6))
            })
            .collect();
        let sql = format!(
            "INSERT INTO ticket_events (ticket_id, at, actor, channel, kind, detail) VALUES {}",
            rows.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for e in chunk {
            q = q
                .bind(e.ticket_id)
                .bind(e.at)
                .bind(e.actor.as_str())
                .bind(e.channel.as_str())
                .bind(e.kind.as_str())
                .bind(e.detail.as_str());
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// One event, as [`insert_event_rows`] writes it.
pub async fn insert_event(
    conn: &mut AnyConnection,
    ticket_id: i64,
    now: i64,
    actor: &str,
    channel: &str,
    kind: &str,
    detail: &serde_json::Value,
) -> Result<()> {
    insert_events(conn, now, channel, &[NewEvent { ticket_id, actor, kind, detail: detail.clone() }]).await
}

/// An email's outbox row, to be inserted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOutbox {
    pub desk: String,
    pub ticket_id: Option<i64>,
    pub message_row: i64,
    pub sender: String,
    pub recipients: Vec<String>,
    pub now: i64,
}

/// Queues emails, in the order given (a ticket's rows are sent in id order): one statement for
/// up to 64 rows ([`row_chunks`]).
pub async fn insert_outbox(conn: &mut AnyConnection, rows: &[NewOutbox]) -> Result<()> {
    for chunk in row_chunks(rows) {
        let values: Vec<String> = (0..chunk.len())
            .map(|i| {
                let p = |k: usize| 6 * i + k;
                format!("(${}, ${}, ${}, ${}, ${}, 'pending', 0, ${}, ${})", p(1), p(2), p(3), p(4), p(5), p(6), p(6))
            })
            .collect();
        let sql = format!(
            "INSERT INTO outbox (desk, ticket_id, message_row, sender, recipients, status, attempts, next_attempt_at, \
             created_at) VALUES {}",
            values.join(", ")
        );
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for r in chunk {
            q = q
                .bind(r.desk.as_str())
                .bind(r.ticket_id)
                .bind(r.message_row)
                .bind(r.sender.as_str())
                .bind(serde_json::to_string(&r.recipients).unwrap_or_else(|_| "[]".into()))
                .bind(r.now);
        }
        q.execute(&mut *conn).await?;
    }
    Ok(())
}

/// Automatic replies sent to `address` by `desk` since `since`.
pub async fn count_auto_replies(conn: &mut AnyConnection, desk: &str, address: &str, since: i64) -> Result<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM messages WHERE desk = $1 AND peer_address = $2 AND auto_reply = 1 AND created_at >= $3",
    )
    .bind(desk)
    .bind(address)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get("n")?)
}

#[allow(clippy::too_many_arguments)]
/// Outbound messages of `kind` sent to `address` by `desk` since `since`.
pub async fn count_kind_since(
    conn: &mut AnyConnection,
    desk: &str,
    address: &str,
    kind: &str,
    since: i64,
) -> Result<i64> {
    let r = sqlx::query(
        "SELECT COUNT(*) AS n FROM messages WHERE desk = $1 AND peer_address = $2 AND kind = $3 AND direction = 'out' \
         AND created_at >= $4",
    )
    .bind(desk)
    .bind(address)
    .bind(kind)
    .bind(since)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get("n")?)
}

#[allow(clippy::too_many_arguments)]
pub async fn insert_quarantine(
    conn: &mut AnyConnection,
    files: &Files,
    desk: &str,
    inbox: &str,
    key: &str,
    reason: &str,
    raw: &[u8],
    size: usize,
    now: i64,
) -> Result<i64> {
    let r = sqlx::query(
        "INSERT INTO quarantine (desk, inbox, idempotency_key, reason, raw, raw_blob, size, created_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id",
    )
    .bind(desk)
    .bind(inbox)
    .bind(key)
    .bind(reason)
    .bind(Vec::<u8>::new())
    .bind(files.put(raw).await?.as_str().to_string())
    .bind(size as i64)
    .bind(now)
    .fetch_one(&mut *conn)
    .await?;
    Ok(r.try_get("id")?)
}

// ---------------------------------------------------------------------------------------------
// Outbox delivery

#[derive(Debug, Clone)]
pub struct OutboxItem {
    pub id: i64,
    pub desk: String,
    pub ticket_id: Option<i64>,
    pub sender: String,
    pub recipients: Vec<String>,
    pub attempts: i64,
    pub raw: Vec<u8>,
    /// Where `raw` is kept when it is a file, until [`outbox_bytes`] reads it.
    raw_blob: Option<String>,
    /// `email`, `telegram` or `whatsapp`.
    pub channel: String,
    /// What a chat sender delivers (JSON); None for mail.
    pub payload: Option<String>,
}

/// Leases for `worker` the rows that `sql` picks — an `UPDATE … SET locked_by = $1,
/// locked_until = $2 … RETURNING id` with `$3` now and `$4` the limit — inside a claim
/// transaction (on SQLite `BEGIN IMMEDIATE`), which stays open for the caller to read the rows.
pub(super) async fn lease_rows(
    pool: &AnyPool,
    backend: Backend,
    sql: String,
    worker: &str,
    lease_until: i64,
    now: i64,
    limit: i64,
) -> Result<(sqlx::Transaction<'static, sqlx::Any>, Vec<i64>)> {
    let mut tx = begin_write(pool, backend).await?;
    let ids = lease_in(&mut tx, sql, worker, lease_until, now, limit).await?;
    Ok((tx, ids))
}

/// A write transaction: on SQLite it takes the write lock at once (`BEGIN IMMEDIATE`), so a read
/// followed by a write never has to wait for a lock it cannot get.
async fn begin_write(pool: &AnyPool, backend: Backend) -> Result<sqlx::Transaction<'static, sqlx::Any>> {
    Ok(match backend {
        Backend::Sqlite => pool.begin_with("BEGIN IMMEDIATE").await?,
        Backend::Postgres => pool.begin().await?,
    })
}

/// Runs a leasing `sql` (`$1` worker, `$2` lease end, `$3` now, `$4` limit; returns the ids
/// leased) in `tx`.
async fn lease_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    sql: String,
    worker: &str,
    lease_until: i64,
    now: i64,
    limit: i64,
) -> Result<Vec<i64>> {
    Ok(sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(worker)
        .bind(lease_until)
        .bind(now)
        .bind(limit)
        .fetch_all(&mut **tx)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<std::result::Result<_, _>>()?)
}

/// Claims up to `limit` due outbox rows for `worker` until `lease_until`. On PostgreSQL rows
/// another instance holds are skipped (`FOR UPDATE SKIP LOCKED`), so no row is delivered twice at
/// once; a lease that expires (its worker died) makes the row due again.
///
/// A conversation's rows go one at a time, in the order queued: a row of a ticket is claimed only
/// when no earlier row of the same ticket, channel and recipients is still pending (being sent,
/// waiting for a retry or for its sender's rate). So a chat's words come before the file that
/// follows them, and a requester reads a ticket's mails in order, whichever instance sends them.
/// Different tickets, and different recipients of one ticket, go in parallel.
pub async fn claim_outbox(
    store: &super::Store,
    worker: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
) -> Result<Vec<OutboxItem>> {
    let mut items = record_and_claim(store, worker, now, lease_until, limit, Vec::new()).await?;
    for item in &mut items {
        outbox_bytes(store, item).await?;
    }
    Ok(items)
}

/// Reads the bytes of a claimed mail kept in the files directory (one larger than
/// [`INLINE_COMPOSED_MAX`]) into `item.raw`. [`record_and_claim`] leaves them there, so that rows
/// claimed ahead of their sends do not hold many large mails at once.
pub async fn outbox_bytes(store: &super::Store, item: &mut OutboxItem) -> Result<()> {
    if let Some(blob) = item.raw_blob.take() {
        item.raw = store.files().read(None, Some(blob)).await?.unwrap_or_default();
    }
    Ok(())
}

/// Gives back rows `worker` claimed and did not start (a worker stopping): due again at once.
pub async fn release_outbox(pool: &AnyPool, worker: &str, ids: &[i64]) -> Result<()> {
    if ids.is_empty() {
        return Ok(());
    }
    let sql = format!(
        "UPDATE outbox SET locked_by = NULL, locked_until = NULL WHERE locked_by = $1 AND id IN ({})",
        placeholders(2, padded_len(ids))
    );
    bind_padded(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(worker), ids).execute(pool).await?;
    Ok(())
}

/// Records the `finished` attempts ([`record_attempts`]) and then claims up to `limit` due rows
/// ([`claim_outbox`]), in one transaction: the outbox worker's one commit (on SQLite one write
/// lock and one sync) for the sends that finished and the ones that start. A row whose earlier
/// mail in its conversation is among `finished` may be claimed in the same transaction. The
/// rows are leased to `worker` until `lease_until`. A large mail's bytes stay in the files
/// directory until [`outbox_bytes`] reads them.
pub async fn record_and_claim(
    store: &super::Store,
    worker: &str,
    now: i64,
    lease_until: i64,
    limit: i64,
    finished: Vec<(i64, AttemptOutcome)>,
) -> Result<Vec<OutboxItem>> {
    let (pool, backend) = (store.pool(), store.backend());
    let lock = if backend == Backend::Postgres { " FOR UPDATE SKIP LOCKED" } else { "" };
    let sql = format!(
        "UPDATE outbox SET locked_by = $1, locked_until = $2 WHERE id IN (\
           SELECT id FROM outbox o WHERE status = 'pending' AND next_attempt_at <= $3 \
           AND (locked_until IS NULL OR locked_until < $3) \
           AND (ticket_id IS NULL OR NOT EXISTS (SELECT 1 FROM outbox e WHERE e.ticket_id = o.ticket_id \
             AND e.status = 'pending' AND e.id < o.id AND e.channel = o.channel AND e.recipients = o.recipients)) \
           ORDER BY next_attempt_at, id LIMIT $4{lock}) \
         RETURNING id"
    );
    let mut tx = begin_write(pool, backend).await?;
    record_in(&mut tx, now, finished).await?;
    let ids = lease_in(&mut tx, sql, worker, lease_until, now, limit).await?;
    #[allow(clippy::disallowed_methods)] // no file is staged in this transaction
    tx.commit().await?;
    let mut items = Vec::with_capacity(ids.len());
    if ids.is_empty() {
        return Ok(items);
    }
    // The claimed rows with their messages' bytes, in one query, once the claim is committed
    // (the rows are this worker's until the lease ends): the write lock is not held for it.
    let sql = format!(
        "SELECT o.id, o.desk, o.ticket_id, o.sender, o.recipients, o.attempts, o.channel, o.payload, \
         CASE WHEN o.channel = 'email' THEN m.raw ELSE NULL END AS raw, \
         CASE WHEN o.channel = 'email' THEN m.raw_blob ELSE NULL END AS raw_blob \
         FROM outbox o JOIN messages m ON m.id = o.message_row WHERE o.id IN ({}) ORDER BY o.next_attempt_at, o.id",
        placeholders(1, padded_len(&ids))
    );
    for r in bind_padded(sqlx::query(sqlx::AssertSqlSafe(sql)), &ids).fetch_all(pool).await? {
        let id: i64 = r.try_get("id")?;
        let recipients: String = r.try_get("recipients")?;
        items.push(OutboxItem {
            id,
            desk: r.try_get("desk")?,
            ticket_id: r.try_get("ticket_id")?,
            sender: r.try_get("sender")?,
            recipients: serde_json::from_str(&recipients)
                .map_err(|e| StoreError::Corrupt(format!("outbox {id} recipients: {e}")))?,
            attempts: r.try_get("attempts")?,
            raw: r.try_get::<Option<Vec<u8>>, _>("raw")?.unwrap_or_default(),
            raw_blob: r.try_get("raw_blob")?,
            channel: r.try_get("channel")?,
            payload: r.try_get("payload")?,
        });
    }
    Ok(items)
}

/// What became of one delivery attempt: `Ok(())` sent; `Err((error, Some(retry_at)))` retry
/// later; `Err((error, None))` give up (status `failed`).
pub type AttemptOutcome = std::result::Result<(), (String, Option<i64>)>;

/// Records a delivery attempt (see [`AttemptOutcome`]).
pub async fn record_attempt(
    pool: &AnyPool,
    backend: Backend,
    id: i64,
    now: i64,
    outcome: AttemptOutcome,
) -> Result<()> {
    record_attempts(pool, backend, now, vec![(id, outcome)]).await
}

/// Records the attempts of one delivery round in one transaction: one commit (on SQLite one
/// write lock and one sync) per round instead of one per message.
pub async fn record_attempts(
    pool: &AnyPool,
    backend: Backend,
    now: i64,
    outcomes: Vec<(i64, AttemptOutcome)>,
) -> Result<()> {
    if outcomes.is_empty() {
        return Ok(());
    }
    let mut tx = begin_write(pool, backend).await?;
    record_in(&mut tx, now, outcomes).await?;
    #[allow(clippy::disallowed_methods)] // no file is staged in this transaction
    tx.commit().await?;
    Ok(())
}

/// [`record_attempts`] in the caller's transaction.
async fn record_in(
    tx: &mut sqlx::Transaction<'static, sqlx::Any>,
    now: i64,
    outcomes: Vec<(i64, AttemptOutcome)>,
) -> Result<()> {
    // The sends that went (most of them): two statements for each 64, not two for each.
    let sent: Vec<i64> = outcomes.iter().filter(|(_, o)| o.is_ok()).map(|(id, _)| *id).collect();
    for chunk in sent.chunks(64) {
        let ids = placeholders(2, padded_len(chunk));
        let sql = format!(
            "INSERT INTO outbox_attempts (outbox_id, at, ok, error) SELECT id, CAST($1 AS BIGINT), 1, NULL \
             FROM outbox WHERE id IN ({ids}) ORDER BY id"
        );
        bind_padded(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now), chunk).execute(&mut **tx).await?;
        let sql = format!(
            "UPDATE outbox SET status = 'sent', attempts = attempts + 1, sent_at = $1, locked_by = NULL, \
             locked_until = NULL, last_error = NULL WHERE id IN ({ids})"
        );
        bind_padded(sqlx::query(sqlx::AssertSqlSafe(sql)).bind(now), chunk).execute(&mut **tx).await?;
    }
    for (id, outcome) in outcomes {
        let Err((error, retry_at)) = outcome else { continue };
        sqlx::query("INSERT INTO outbox_attempts (outbox_id, at, ok, error) VALUES ($1, $2, $3, $4)")
            .bind(id)
            .bind(now)
            .bind(0i64)
            .bind(&error)
            .execute(&mut **tx)
            .await?;
        match retry_at {
            Some(retry_at) => {
                sqlx::query(
                    "UPDATE outbox SET attempts = attempts + 1, next_attempt_at = $1, last_error = $2, locked_by = NULL, \
                     locked_until = NULL WHERE id = $3",
                )
                .bind(retry_at)
                .bind(error)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            }
            None => {
                sqlx::query(
                    "UPDATE outbox SET status = 'failed', attempts = attempts + 1, last_error = $1, locked_by = NULL, \
                     locked_until = NULL WHERE id = $2",
                )
                .bind(error)
                .bind(id)
                .execute(&mut **tx)
                .await?;
            }
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Inbox leases

/// Takes or renews the lease on `inbox` for `holder` until `expires_at`; succeeds when the inbox
/// is free, its lease expired, or `holder` already has it.
pub async fn acquire_lease(pool: &AnyPool, inbox: &str, holder: &str, now: i64, expires_at: i64) -> Result<bool> {
    let r = sqlx::query(
        "INSERT INTO inbox_leases (inbox, holder, expires_at) VALUES ($1, $2, $3) \
         ON CONFLICT (inbox) DO UPDATE SET holder = $2, expires_at = $3 \
         WHERE inbox_leases.holder = $2 OR inbox_leases.expires_at < $4 RETURNING holder",
    )
    .bind(inbox)
    .bind(holder)
    .bind(expires_at)
    .bind(now)
    .fetch_optional(pool)
    .await?;
    Ok(r.is_some())
}

/// Gives a lease up (clean shutdown), so another instance takes the inbox at once.
pub async fn release_lease(pool: &AnyPool, inbox: &str, holder: &str) -> Result<()> {
    sqlx::query("DELETE FROM inbox_leases WHERE inbox = $1 AND holder = $2")
        .bind(inbox)
        .bind(holder)
        .execute(pool)
        .await?;
    Ok(())
}

/// The current holder of an inbox's lease, if it has not expired.
pub async fn lease_holder(pool: &AnyPool, inbox: &str, now: i64) -> Result<Option<String>> {
    let r = sqlx::query("SELECT holder FROM inbox_leases WHERE inbox = $1 AND expires_at >= $2")
        .bind(inbox)
        .bind(now)
        .fetch_optional(pool)
        .await?;
    Ok(match r {
        Some(r) => Some(r.try_get("holder")?),
        None => None,
    })
}

// ---------------------------------------------------------------------------------------------
// Inbox checkpoints

pub async fn checkpoint(pool: &AnyPool, inbox: &str) -> Result<Option<(i64, i64)>> {
    let r = sqlx::query("SELECT uidvalidity, last_uid FROM inbox_checkpoints WHERE inbox = $1")
        .bind(inbox)
        .fetch_optional(pool)
        .await?;
    r.map(|r| Ok((r.try_get("uidvalidity")?, r.try_get("last_uid")?))).transpose()
}

pub async fn save_checkpoint(pool: &AnyPool, inbox: &str, uidvalidity: i64, last_uid: i64, now: i64) -> Result<()> {
    sqlx::query(
        "INSERT INTO inbox_checkpoints (inbox, uidvalidity, last_uid, updated_at) VALUES ($1, $2, $3, $4) \
         ON CONFLICT (inbox) DO UPDATE SET uidvalidity = $2, last_uid = $3, updated_at = $4",
    )
    .bind(inbox)
    .bind(uidvalidity)
    .bind(last_uid)
    .bind(now)
    .execute(pool)
    .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Reading, for the CLI and tests

#[derive(Debug, Clone, Default)]
pub struct TicketFilter {
    pub desk: Option<String>,
    pub status: Option<String>,
    pub limit: i64,
    pub offset: i64,
}

pub async fn list_tickets(pool: &AnyPool, f: &TicketFilter) -> Result<Vec<Ticket>> {
    let sql = format!(
        "SELECT {TICKET_COLS} FROM tickets WHERE ($1 IS NULL OR desk = $1) AND ($2 IS NULL OR status = $2) \
         ORDER BY id DESC LIMIT $3 OFFSET $4"
    );
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
        .bind(f.desk.clone())
        .bind(f.status.clone())
        .bind(f.limit.clamp(1, 10_000))
        .bind(f.offset.max(0))
        .fetch_all(pool)
        .await?;
    rows.iter().map(ticket_from).collect()
}

/// Tickets whose number is `number`, in any desk.
pub async fn tickets_by_number(pool: &AnyPool, number: &str) -> Result<Vec<Ticket>> {
    let sql = format!("SELECT {TICKET_COLS} FROM tickets WHERE number = $1 ORDER BY id");
    let rows = sqlx::query(sqlx::AssertSqlSafe(sql)).bind(number).fetch_all(pool).await?;
    rows.iter().map(ticket_from).collect()
}

#[derive(Debug, Clone, Serialize)]
pub struct MessageSummary {
    pub id: i64,
    pub direction: String,
    pub kind: String,
    pub action: String,
    pub reason: Option<String>,
    pub message_id: Option<String>,
    pub from_address: Option<String>,
    pub to_addresses: Vec<String>,
    pub subject: String,
    pub body_text: String,
    pub size: i64,
    pub created_at: i64,
    pub attachments: Vec<AttachmentSummary>,
    /// Delivery state of an outbound message: pending, sent or failed.
    pub delivery: Option<String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct AttachmentSummary {
    pub filename: Option<String>,
    pub content_type: String,
    pub size: i64,
    pub sha256: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct EventRow {
    pub at: i64,
    pub actor: String,
    pub channel: String,
    pub kind: String,
    pub detail: serde_json::Value,
}

pub async fn ticket_messages(pool: &AnyPool, ticket_id: i64) -> Result<Vec<MessageSummary>> {
    let rows = sqlx::query(
        "SELECT m.id, m.direction, m.kind, m.action, m.reason, m.message_id, m.from_address, m.to_addresses, \
         m.subject, m.body_text, m.size, m.created_at, o.status AS delivery \
         FROM messages m LEFT JOIN outbox o ON o.message_row = m.id WHERE m.ticket_id = $1 ORDER BY m.id",
    )
    .bind(ticket_id)
    .fetch_all(pool)
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        let id: i64 = r.try_get("id")?;
        let to: String = r.try_get("to_addresses")?;
        let atts = sqlx::query(
            "SELECT filename, content_type, size, sha256 FROM attachments WHERE message_row = $1 ORDER BY id",
        )
        .bind(id)
        .fetch_all(pool)
        .await?
        .iter()
        .map(|a| {
            Ok(AttachmentSummary {
                filename: a.try_get("filename")?,
                content_type: a.try_get("content_type")?,
                size: a.try_get("size")?,
                sha256: a.try_get("sha256")?,
            })
        })
        .collect::<Result<Vec<_>>>()?;
        out.push(MessageSummary {
            id,
            direction: r.try_get("direction")?,
            kind: r.try_get("kind")?,
            action: r.try_get("action")?,
            reason: r.try_get("reason")?,
            message_id: r.try_get("message_id")?,
            from_address: r.try_get("from_address")?,
            to_addresses: serde_json::from_str(&to).unwrap_or_default(),
            subject: r.try_get("subject")?,
            body_text: r.try_get("body_text")?,
            size: r.try_get("size")?,
            created_at: r.try_get("created_at")?,
            attachments: atts,
            delivery: r.try_get("delivery")?,
        });
    }
    Ok(out)
}

/// The raw bytes of a stored message (from the files directory, or from the row for a message
/// stored before it).
pub async fn message_raw(store: &super::Store, message_row: i64) -> Result<Option<Vec<u8>>> {
    let r = sqlx::query("SELECT raw, raw_blob FROM messages WHERE id = $1")
        .bind(message_row)
        .fetch_optional(store.pool())
        .await?;
    match r {
        Some(r) => store.files().read(r.try_get("raw")?, r.try_get("raw_blob")?).await,
        None => Ok(None),
    }
}

pub async fn ticket_events(pool: &AnyPool, ticket_id: i64) -> Result<Vec<EventRow>> {
    let rows =
        sqlx::query("SELECT at, actor, channel, kind, detail FROM ticket_events WHERE ticket_id = $1 ORDER BY id")
            .bind(ticket_id)
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|r| {
            let detail: String = r.try_get("detail")?;
            Ok(EventRow {
                at: r.try_get("at")?,
                actor: r.try_get("actor")?,
                channel: r.try_get("channel")?,
                kind: r.try_get("kind")?,
                detail: serde_json::from_str(&detail).unwrap_or(serde_json::Value::String(detail)),
            })
        })
        .collect()
}

/// Row counts used by tests and `loket tickets list --summary`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    pub tickets: i64,
    pub inbound: i64,
    pub outbound: i64,
    pub outbox_pending: i64,
    pub outbox_sent: i64,
    pub outbox_failed: i64,
    pub quarantined: i64,
}

pub async fn counts(pool: &AnyPool) -> Result<Counts> {
    let one = |sql: &'static str| async move {
        let r = sqlx::query(sql).fetch_one(pool).await?;
        Ok::<i64, StoreError>(r.try_get("n")?)
    };
    Ok(Counts {
        tickets: one("SELECT COUNT(*) AS n FROM tickets").await?,
        inbound: one("SELECT COUNT(*) AS n FROM messages WHERE direction = 'in'").await?,
        outbound: one("SELECT COUNT(*) AS n FROM messages WHERE direction = 'out'").await?,
        outbox_pending: one("SELECT COUNT(*) AS n FROM outbox WHERE status = 'pending'").await?,
        outbox_sent: one("SELECT COUNT(*) AS n FROM outbox WHERE status = 'sent'").await?,
        outbox_failed: one("SELECT COUNT(*) AS n FROM outbox WHERE status = 'failed'").await?,
        quarantined: one("SELECT COUNT(*) AS n FROM quarantine").await?,
    })
}

/// Delivery attempts that failed, ever.
pub async fn outbox_failed_attempts(pool: &AnyPool) -> Result<i64> {
    let r = sqlx::query("SELECT COUNT(*) AS n FROM outbox_attempts WHERE ok = 0").fetch_one(pool).await?;
    Ok(r.try_get("n")?)
}

#[derive(Debug, Clone, Serialize)]
pub struct QuarantineRow {
    pub id: i64,
    pub desk: String,
    pub inbox: String,
    pub reason: String,
    pub size: i64,
    pub created_at: i64,
    /// `held`, `released` (run through the pipeline) or `dropped` (bytes deleted).
    pub state: &'static str,
}

pub async fn list_quarantine(pool: &AnyPool, limit: i64) -> Result<Vec<QuarantineRow>> {
    let rows =
        sqlx::query("SELECT id, desk, inbox, reason, size, created_at, released_at, dropped_at FROM quarantine ORDER BY id DESC LIMIT $1")
            .bind(limit.clamp(1, 10_000))
            .fetch_all(pool)
            .await?;
    rows.iter()
        .map(|r| {
            Ok(QuarantineRow {
                id: r.try_get("id")?,
                desk: r.try_get("desk")?,
                inbox: r.try_get("inbox")?,
                reason: r.try_get("reason")?,
                size: r.try_get("size")?,
                created_at: r.try_get("created_at")?,
                state: match (r.try_get::<Option<i64>, _>("released_at")?, r.try_get::<Option<i64>, _>("dropped_at")?) {
                    (Some(_), _) => "released",
                    (_, Some(_)) => "dropped",
                    _ => "held",
                },
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_go_in_order_in_chunks_of_seven_lengths_at_most() {
        let mut lengths = std::collections::BTreeSet::new();
        for n in 0..=300usize {
            let items: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = row_chunks(&items).collect();
            assert_eq!(chunks.concat(), items, "every row once, in order ({n} rows)");
            for c in &chunks {
                assert!(c.len().is_power_of_two() && c.len() <= MOST_ROWS, "{n} rows: a chunk of {}", c.len());
            }
            // The largest chunk that fits comes first: at most one of each length below 64.
            let small: Vec<usize> = chunks.iter().map(|c| c.len()).filter(|&l| l < MOST_ROWS).collect();
            assert!(small.windows(2).all(|w| w[0] > w[1]), "{n} rows: {small:?}");
            lengths.extend(chunks.iter().map(|c| c.len()));
        }
        assert_eq!(lengths.into_iter().collect::<Vec<_>>(), [1, 2, 4, 8, 16, 32, 64]);
    }
}
