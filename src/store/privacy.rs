//! One person's data: everything held about them (`loket export`) and its erasure (`loket
//! forget`), by the rules of [`crate::privacy`]. Erasure is one transaction; on SQLite it runs
//! on connections that zero what they free (`secure_delete`, set on every SQLite connection) and
//! is followed by a WAL checkpoint, so the old text is left neither in the database file nor in
//! its journal. On
//! PostgreSQL the old row versions stay in the table files until autovacuum reclaims them (run
//! `VACUUM` on `messages`, `tickets` and `ticket_events` to make it at once). Raw mail and chat
//! files live in the files directory ([`blobs`]): the rows an erasure clears name blobs, which are
//! deleted once it committed and no other row names them ([`blobs::release`]).

use base64::Engine;
use serde_json::{Value, json};
use sqlx::{AnyConnection, Row};

use super::blobs::{self, BlobId};
use super::{Backend, Store, StoreError};
use crate::privacy::{ERASED, mentions, replace_addresses, scrub_detail};

type Result<T> = std::result::Result<T, StoreError>;

use super::queries::placeholders;

/// An outbox row's recipients rewritten, its chat payload and its errors dropped.
async fn scrub_outbox(conn: &mut AnyConnection, id: i64, recipients: &str) -> Result<()> {
    sqlx::query("UPDATE outbox SET recipients = $1, payload = NULL, last_error = NULL WHERE id = $2")
        .bind(recipients)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query("UPDATE outbox_attempts SET error = NULL WHERE outbox_id = $1").bind(id).execute(&mut *conn).await?;
    Ok(())
}

/// A `LIKE` pattern that finds `text` anywhere, `%`, `_` and `\` escaped (with `ESCAPE '\'`).
fn contains_pattern(text: &str) -> String {
    let escaped: String = text
        .to_ascii_lowercase()
        .chars()
        .flat_map(|c| if matches!(c, '%' | '_' | '\\') { vec!['\\', c] } else { vec![c] })
        .collect();
    format!("%{escaped}%")
}

/// `(LOWER(col) LIKE $k ESCAPE '\' OR …)` over `columns` for `n` patterns bound from `from`.
fn any_like(columns: &[&str], from: usize, n: usize) -> String {
    let mut terms = Vec::new();
    for c in columns {
        for i in from..from + n {
            terms.push(format!("LOWER(COALESCE({c}, '')) LIKE ${i} ESCAPE '\\'"));
        }
    }
    format!("({})", terms.join(" OR "))
}

/// The person `address` is, as addresses: it and the chat identities linked to it both ways
/// (a chat user's `/email` link).
pub async fn person_addresses(store: &Store, address: &str) -> Result<Vec<String>> {
    let address = address.to_ascii_lowercase();
    let rows = sqlx::query(
        "SELECT LOWER(address) AS a, LOWER(COALESCE(email, '')) AS e FROM chat_users \
         WHERE LOWER(address) = $1 OR LOWER(COALESCE(email, '')) = $1",
    )
    .bind(&address)
    .fetch_all(store.pool())
    .await?;
    let mut out = vec![address];
    for r in rows {
        for col in ["a", "e"] {
            let v: String = r.try_get(col)?;
            if !v.is_empty() && !out.contains(&v) {
                out.push(v);
            }
        }
    }
    Ok(out)
}

/// A quarantine row's bytes: in the row (stored before the files directory), else its file.
async fn quarantined_bytes(store: &Store, r: &sqlx::any::AnyRow) -> Result<Vec<u8>> {
    let inline: Vec<u8> = r.try_get("raw")?;
    if !inline.is_empty() {
        return Ok(inline);
    }
    Ok(store.files().read(None, r.try_get("raw_blob")?).await?.unwrap_or_default())
}

/// Every quarantined message's id: their bytes are then read one at a time, not all at once.
async fn quarantine_ids(conn: &mut AnyConnection) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar("SELECT id FROM quarantine ORDER BY id").fetch_all(&mut *conn).await?)
}

/// The ids of the tickets whose requester is one of `addresses`.
async fn own_tickets(conn: &mut AnyConnection, addresses: &[String]) -> Result<Vec<i64>> {
    let sql = format!(
        "SELECT id FROM tickets WHERE LOWER(requester_address) IN ({}) ORDER BY id",
        placeholders(1, addresses.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in addresses {
        q = q.bind(a);
    }
    q.fetch_all(&mut *conn).await?.iter().map(|r| r.try_get::<i64, _>("id").map_err(StoreError::from)).collect()
}

/// The files on disk of message `row`'s attachments (chat files).
async fn file_blobs(conn: &mut AnyConnection, row: i64) -> Result<Vec<BlobId>> {
    let names: Vec<String> =
        sqlx::query_scalar("SELECT content_blob FROM attachments WHERE message_row = $1 AND content_blob IS NOT NULL")
            .bind(row)
            .fetch_all(&mut *conn)
            .await?;
    Ok(names.iter().filter_map(|n| BlobId::parse(n)).collect())
}

/// The messages that concern the person: of their tickets, from them, to them, or naming them.
async fn their_messages(
    conn: &mut AnyConnection,
    addresses: &[String],
    tickets: &[i64],
) -> Result<Vec<sqlx::any::AnyRow>> {
    let n = addresses.len();
    let mut sql = format!(
        "SELECT m.id, m.ticket_id, m.direction, m.channel, m.kind, m.created_at, m.peer_address, m.from_address, \
         m.to_addresses, m.subject, m.body_text, m.reason, m.raw, m.raw_blob, t.number FROM messages m \
         LEFT JOIN tickets t ON t.id = m.ticket_id WHERE LOWER(COALESCE(m.peer_address, '')) IN ({in1}) \
         OR LOWER(COALESCE(m.from_address, '')) IN ({in1}) OR {like}",
        in1 = placeholders(1, n),
        like = any_like(&["m.to_addresses", "m.body_text", "m.subject", "m.reason"], n + 1, n),
    );
    if !tickets.is_empty() {
        sql.push_str(&format!(" OR m.ticket_id IN ({})", placeholders(2 * n + 1, tickets.len())));
    }
    sql.push_str(" ORDER BY m.id");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in addresses {
        q = q.bind(a);
    }
    for a in addresses {
        q = q.bind(contains_pattern(a));
    }
    for t in tickets {
        q = q.bind(*t);
    }
    Ok(q.fetch_all(&mut *conn).await?)
}

/// Everything held about the person with `addresses` (see [`person_addresses`]), as JSON:
/// their tickets with every message and event, the messages elsewhere that came from, went to
/// or named them (raw mail as base64), files, participations, chat identities and quarantined
/// mail that names them.
pub async fn export(store: &Store, addresses: &[String]) -> Result<Value> {
    let mut conn = store.pool().acquire().await?;
    let tickets = own_tickets(&mut conn, addresses).await?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let mut ticket_rows = Vec::new();
    for id in &tickets {
        let t = sqlx::query(
            "SELECT number, desk, category, subcategory, ticket_type, status, channel, subject, requester_address, \
             requester_name, rating, rating_comment, created_at, updated_at, resolved_at, closed_at FROM tickets WHERE id = $1",
        )
        .bind(*id)
        .fetch_one(&mut *conn)
        .await?;
        let events = sqlx::query("SELECT at, actor, kind, detail FROM ticket_events WHERE ticket_id = $1 ORDER BY id")
            .bind(*id)
            .fetch_all(&mut *conn)
            .await?
            .iter()
            .map(|e| {
                let detail: String = e.try_get("detail")?;
                Ok(json!({
                    "at": e.try_get::<i64, _>("at")?,
                    "actor": e.try_get::<String, _>("actor")?,
                    "kind": e.try_get::<String, _>("kind")?,
                    "detail": serde_json::from_str::<Value>(&detail).unwrap_or(Value::String(detail)),
                }))
            })
            .collect::<Result<Vec<Value>>>()?;
        ticket_rows.push(json!({
            "number": t.try_get::<String, _>("number")?,
            "desk": t.try_get::<String, _>("desk")?,
            "category": t.try_get::<String, _>("category")?,
            "subcategory": t.try_get::<String, _>("subcategory")?,
            "type": t.try_get::<Option<String>, _>("ticket_type")?,
            "status": t.try_get::<String, _>("status")?,
            "channel": t.try_get::<String, _>("channel")?,
            "subject": t.try_get::<String, _>("subject")?,
            "requester_address": t.try_get::<String, _>("requester_address")?,
            "requester_name": t.try_get::<Option<String>, _>("requester_name")?,
            "rating": t.try_get::<Option<i64>, _>("rating")?,
            "rating_comment": t.try_get::<Option<String>, _>("rating_comment")?,
            "created_at": t.try_get::<i64, _>("created_at")?,
            "updated_at": t.try_get::<i64, _>("updated_at")?,
            "resolved_at": t.try_get::<Option<i64>, _>("resolved_at")?,
            "closed_at": t.try_get::<Option<i64>, _>("closed_at")?,
            "events": events,
        }));
    }
    let mut messages = Vec::new();
    for m in their_messages(&mut conn, addresses, &tickets).await? {
        let id: i64 = m.try_get("id")?;
        let mut files = Vec::new();
        for f in sqlx::query(
            "SELECT filename, content_type, size, sha256, content, content_blob FROM attachments WHERE message_row = $1 \
             ORDER BY part_index",
        )
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
        {
            let content = store.files().read(f.try_get("content")?, f.try_get("content_blob")?).await?;
            files.push(json!({
                "filename": f.try_get::<Option<String>, _>("filename")?,
                "content_type": f.try_get::<String, _>("content_type")?,
                "size": f.try_get::<i64, _>("size")?,
                "sha256": f.try_get::<String, _>("sha256")?,
                "content_base64": content.map(|c| b64.encode(c)),
            }));
        }
        let raw = store.files().read(m.try_get("raw")?, m.try_get("raw_blob")?).await?;
        let to: String = m.try_get("to_addresses")?;
        messages.push(json!({
            "ticket": m.try_get::<Option<String>, _>("number")?,
            "direction": m.try_get::<String, _>("direction")?,
            "channel": m.try_get::<String, _>("channel")?,
            "kind": m.try_get::<String, _>("kind")?,
            "at": m.try_get::<i64, _>("created_at")?,
            "from": m.try_get::<Option<String>, _>("from_address")?,
            "peer": m.try_get::<Option<String>, _>("peer_address")?,
            "to": serde_json::from_str::<Value>(&to).unwrap_or(Value::String(to)),
            "subject": m.try_get::<String, _>("subject")?,
            "text": m.try_get::<String, _>("body_text")?,
            "files": files,
            "raw_base64": raw.map(|r| b64.encode(r)),
        }));
    }
    let sql = format!(
        "SELECT t.number, p.address, p.source, p.created_at FROM ticket_participants p JOIN tickets t ON t.id = p.ticket_id \
         WHERE LOWER(p.address) IN ({}) ORDER BY p.created_at",
        placeholders(1, addresses.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in addresses {
        q = q.bind(a);
    }
    let participations = q
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(json!({
                "ticket": r.try_get::<String, _>("number")?,
                "address": r.try_get::<String, _>("address")?,
                "source": r.try_get::<String, _>("source")?,
                "at": r.try_get::<i64, _>("created_at")?,
            }))
        })
        .collect::<Result<Vec<Value>>>()?;
    let sql = format!(
        "SELECT desk, platform, user_id, chat_id, address, name, language, email, created_at FROM chat_users \
         WHERE LOWER(address) IN ({in1}) OR LOWER(COALESCE(email, '')) IN ({in1}) ORDER BY id",
        in1 = placeholders(1, addresses.len())
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in addresses {
        q = q.bind(a);
    }
    let chat = q
        .fetch_all(&mut *conn)
        .await?
        .iter()
        .map(|r| {
            Ok(json!({
                "desk": r.try_get::<String, _>("desk")?,
                "platform": r.try_get::<String, _>("platform")?,
                "user_id": r.try_get::<String, _>("user_id")?,
                "chat_id": r.try_get::<String, _>("chat_id")?,
                "address": r.try_get::<String, _>("address")?,
                "name": r.try_get::<Option<String>, _>("name")?,
                "language": r.try_get::<Option<String>, _>("language")?,
                "email": r.try_get::<Option<String>, _>("email")?,
                "created_at": r.try_get::<i64, _>("created_at")?,
            }))
        })
        .collect::<Result<Vec<Value>>>()?;
    let mut quarantined = Vec::new();
    for id in quarantine_ids(&mut conn).await? {
        let r = sqlx::query("SELECT id, desk, reason, raw, raw_blob, created_at FROM quarantine WHERE id = $1")
            .bind(id)
            .fetch_one(&mut *conn)
            .await?;
        let raw = quarantined_bytes(store, &r).await?;
        if mentions(&String::from_utf8_lossy(&raw), addresses) {
            quarantined.push(json!({
                "id": r.try_get::<i64, _>("id")?,
                "desk": r.try_get::<String, _>("desk")?,
                "reason": r.try_get::<String, _>("reason")?,
                "at": r.try_get::<i64, _>("created_at")?,
                "raw_base64": b64.encode(&raw),
            }));
        }
    }
    Ok(json!({
        "addresses": addresses,
        "tickets": ticket_rows,
        "messages": messages,
        "participations": participations,
        "chat_identities": chat,
        "quarantine": quarantined,
    }))
}

/// What an erasure changed, in counts (the only thing it reports: no personal data).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Erased {
    pub tickets: usize,
    pub messages: usize,
    pub files: usize,
    pub events: usize,
    pub participations: usize,
    pub chat_identities: usize,
    pub quarantined: usize,
}

/// Erases the person with `addresses` (see [`crate::privacy`]): their tickets are anonymised
/// (requester and name, subject, every message's text, raw mail and files; numbers, categories,
/// times, statuses, clocks and ratings kept), their addresses replaced by `pseudonym` wherever
/// else they appear (others' tickets keep their text), their participations and chat identities
/// deleted, quarantined mail naming them emptied. Each of their tickets gets a
/// `personal_data_erased` event by `actor` whose detail names no one. One transaction.
pub async fn forget(store: &Store, addresses: &[String], pseudonym: &str, actor: &str, now: i64) -> Result<Erased> {
    let sqlite = store.backend() == Backend::Sqlite;
    let started = crate::now_ms();
    let mut released = Vec::new();
    let mut tx = store.begin().await?;
    let mut erased = Erased::default();
    let tickets = own_tickets(&mut tx, addresses).await?;
    erased.tickets = tickets.len();
    // Their own tickets, whole: as the retention job anonymises a ticket.
    for id in &tickets {
        let (messages, files, events) =
            anonymise_ticket(&mut tx, *id, addresses, pseudonym, actor, now, &mut released).await?;
        erased.messages += messages;
        erased.files += files;
        erased.events += events;
    }
    let replace = |s: &str| replace_addresses(s, addresses, pseudonym);
    let mut outbox_of = Vec::new();
    // Elsewhere: mail from them (ticketless, or as a participant) erased, mail to or naming them
    // with their addresses replaced.
    for m in their_messages(&mut tx, addresses, &[]).await? {
        let id: i64 = m.try_get("id")?;
        let peer: Option<String> = m.try_get("peer_address")?;
        let from: Option<String> = m.try_get("from_address")?;
        let theirs =
            [&peer, &from].iter().any(|a| a.as_deref().is_some_and(|a| addresses.contains(&a.to_ascii_lowercase())));
        let (subject, body): (String, String) = if theirs {
            (ERASED.into(), String::new())
        } else {
            (replace(&m.try_get::<String, _>("subject")?), replace(&m.try_get::<String, _>("body_text")?))
        };
        released.extend(m.try_get::<Option<String>, _>("raw_blob")?.as_deref().and_then(BlobId::parse));
        sqlx::query(
            "UPDATE messages SET subject = $1, body_text = $2, raw = NULL, raw_blob = NULL, peer_address = $3, \
             from_address = $4, to_addresses = $5, reason = $6 WHERE id = $7",
        )
        .bind(subject)
        .bind(body)
        .bind(peer.as_deref().map(replace))
        .bind(from.as_deref().map(replace))
        .bind(replace(&m.try_get::<String, _>("to_addresses")?))
        .bind(m.try_get::<Option<String>, _>("reason")?.as_deref().map(replace))
        .bind(id)
        .execute(&mut *tx)
        .await?;
        erased.messages += 1;
        if theirs {
            released.extend(file_blobs(&mut tx, id).await?);
            let files = sqlx::query(
                "UPDATE attachments SET content = NULL, content_blob = NULL, filename = $1 WHERE message_row = $2",
            )
            .bind(ERASED)
            .bind(id)
            .execute(&mut *tx)
            .await?;
            erased.files += files.rows_affected() as usize;
        }
        outbox_of.push(id);
    }
    // The outbox rows of those messages, and any other row addressed to the person.
    let n = addresses.len();
    let sql = format!(
        "SELECT id, recipients FROM outbox WHERE {}{}",
        any_like(&["recipients"], 1, n),
        if outbox_of.is_empty() {
            String::new()
        } else {
            format!(" OR message_row IN ({})", placeholders(n + 1, outbox_of.len()))
        }
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in addresses {
        q = q.bind(contains_pattern(a));
    }
    for m in &outbox_of {
        q = q.bind(*m);
    }
    for r in q.fetch_all(&mut *tx).await? {
        let id: i64 = r.try_get("id")?;
        scrub_outbox(&mut tx, id, &replace(&r.try_get::<String, _>("recipients")?)).await?;
    }
    // Events elsewhere by them or naming them: addresses replaced.
    let sql = format!(
        "SELECT id, ticket_id, actor, detail FROM ticket_events WHERE LOWER(actor) IN ({}) OR {}",
        placeholders(1, n),
        any_like(&["detail"], n + 1, n)
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in addresses {
        q = q.bind(a);
    }
    for a in addresses {
        q = q.bind(contains_pattern(a));
    }
    for e in q.fetch_all(&mut *tx).await? {
        let detail: String = e.try_get("detail")?;
        let detail = match serde_json::from_str::<Value>(&detail) {
            Ok(v) => scrub_detail(&v, addresses, pseudonym, false).to_string(),
            Err(_) => replace(&detail),
        };
        sqlx::query("UPDATE ticket_events SET actor = $1, detail = $2 WHERE id = $3")
            .bind(replace(&e.try_get::<String, _>("actor")?))
            .bind(detail)
            .bind(e.try_get::<i64, _>("id")?)
            .execute(&mut *tx)
            .await?;
        erased.events += 1;
    }
    let in_list = placeholders(1, n);
    let sql = format!("DELETE FROM ticket_participants WHERE LOWER(address) IN ({in_list})");
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in addresses {
        q = q.bind(a);
    }
    erased.participations = q.execute(&mut *tx).await?.rows_affected() as usize;
    let sql = format!(
        "DELETE FROM chat_users WHERE LOWER(address) IN ({in_list}) OR LOWER(COALESCE(email, '')) IN ({in_list})"
    );
    let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
    for a in addresses {
        q = q.bind(a);
    }
    erased.chat_identities = q.execute(&mut *tx).await?.rows_affected() as usize;
    for id in quarantine_ids(&mut tx).await? {
        let r = sqlx::query("SELECT raw, raw_blob FROM quarantine WHERE id = $1").bind(id).fetch_one(&mut *tx).await?;
        let raw = quarantined_bytes(store, &r).await?;
        if mentions(&String::from_utf8_lossy(&raw), addresses) {
            released.extend(r.try_get::<Option<String>, _>("raw_blob")?.as_deref().and_then(BlobId::parse));
            sqlx::query("UPDATE quarantine SET raw = $1, raw_blob = NULL, size = 0 WHERE id = $2")
                .bind(Vec::<u8>::new())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            erased.quarantined += 1;
        }
    }
    #[allow(clippy::disallowed_methods)] // no file is staged in this transaction
    tx.commit().await?;
    if sqlite {
        // Every connection zeroes what it frees (`secure_delete`, set for all), so no stale copy
        // is left in the file; the checkpoint empties the journal, which held the old pages.
        empty_the_journal(store).await?;
    }
    // Their raw mail and files on disk: gone with the last row that named them.
    blobs::release(store, &released, started).await?;
    Ok(erased)
}

/// What a retention run changed, in counts.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Expired {
    /// Messages whose raw mail (and files) were purged.
    pub raw_mails: usize,
    /// Closed tickets anonymised.
    pub tickets: usize,
}

/// Applies `desk`'s retention at `now` (see [`crate::privacy::Retention`]): raw mail and files
/// older than the raw cut-off are purged (text and audit kept); each closed or rejected ticket
/// closed before the ticket cut-off is anonymised alone — its requester and participants
/// replaced by a pseudonym drawn for it, its subject, texts, raw mail and files erased, its
/// numbers and statistics kept, a `personal_data_erased` event added. On SQLite the
/// journal is emptied when anything changed. Idempotent: a second run finds
/// nothing.
pub async fn expire(store: &Store, desk: &str, retention: &crate::privacy::Retention, now: i64) -> Result<Expired> {
    let (raw_before, closed_before) = retention.cutoffs(now);
    let sqlite = store.backend() == Backend::Sqlite;
    let started = crate::now_ms();
    let mut released = Vec::new();
    let mut expired = Expired::default();
    let mut tx = store.begin().await?;
    if let Some(before) = raw_before {
        for r in sqlx::query(
            "SELECT content_blob AS b FROM attachments WHERE content_blob IS NOT NULL AND message_row IN \
             (SELECT id FROM messages WHERE desk = $1 AND created_at < $2) \
             UNION SELECT raw_blob AS b FROM messages WHERE desk = $1 AND created_at < $2 AND raw_blob IS NOT NULL",
        )
        .bind(desk)
        .bind(before)
        .fetch_all(&mut *tx)
        .await?
        {
            released.extend(BlobId::parse(&r.try_get::<String, _>("b")?));
        }
        sqlx::query(
            "UPDATE attachments SET content = NULL, content_blob = NULL WHERE (content IS NOT NULL OR content_blob IS NOT NULL) \
             AND message_row IN (SELECT id FROM messages WHERE desk = $1 AND created_at < $2)",
        )
        .bind(desk)
        .bind(before)
        .execute(&mut *tx)
        .await?;
        let raw = sqlx::query(
            "UPDATE messages SET raw = NULL, raw_blob = NULL WHERE desk = $1 AND created_at < $2 \
             AND (raw IS NOT NULL OR raw_blob IS NOT NULL)",
        )
        .bind(desk)
        .bind(before)
        .execute(&mut *tx)
        .await?;
        expired.raw_mails = raw.rows_affected() as usize;
    }
    if let Some(before) = closed_before {
        let due = sqlx::query(
            "SELECT id, requester_address FROM tickets WHERE desk = $1 AND status IN ('closed', 'rejected') \
             AND COALESCE(closed_at, updated_at) < $2 AND requester_address NOT LIKE '%@erased.invalid' ORDER BY id",
        )
        .bind(desk)
        .bind(before)
        .fetch_all(&mut *tx)
        .await?;
        for t in due {
            let id: i64 = t.try_get("id")?;
            let mut people = vec![t.try_get::<String, _>("requester_address")?.to_ascii_lowercase()];
            for r in sqlx::query("SELECT LOWER(address) AS a FROM ticket_participants WHERE ticket_id = $1")
                .bind(id)
                .fetch_all(&mut *tx)
                .await?
            {
                people.push(r.try_get("a")?);
            }
            let mut random = [0u8; 8];
            getrandom::fill(&mut random).map_err(|e| StoreError::Setup(format!("no randomness: {e}")))?;
            let pseudonym = crate::privacy::pseudonym(random);
            anonymise_ticket(&mut tx, id, &people, &pseudonym, "retention", now, &mut released).await?;
            expired.tickets += 1;
        }
    }
    #[allow(clippy::disallowed_methods)] // no file is staged in this transaction
    tx.commit().await?;
    if sqlite && (expired.raw_mails > 0 || expired.tickets > 0) {
        empty_the_journal(store).await?;
    }
    blobs::release(store, &released, started).await?;
    Ok(expired)
}

/// SQLite's write-ahead journal checkpointed into the file and truncated, so that the old pages it
/// held (the words just erased) are gone from the disk. A checkpoint that a reader's snapshot
/// holds back reports itself busy rather than failing; it is tried again for a while (readers'
/// transactions are short) and, if still held back, logged: the next checkpoint finishes it.
async fn empty_the_journal(store: &Store) -> Result<()> {
    for _ in 0..CHECKPOINT_TRIES {
        let r = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)").fetch_one(store.pool()).await?;
        if r.try_get::<i64, _>(0)? == 0 {
            return Ok(());
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    tracing::warn!(
        "the journal could not be emptied: a reader held it back; erased words stay in it until the next checkpoint"
    );
    Ok(())
}

/// How often [`empty_the_journal`] tries (20 ms apart).
const CHECKPOINT_TRIES: usize = 100;

/// Every desk's retention applied at `now` (desks without one are left out), each desk's result
/// apart: one desk's failure does not stop the others'.
pub async fn expire_all<'c>(
    store: &Store,
    config: &'c crate::config::Config,
    now: i64,
) -> Vec<(&'c str, Result<Expired>)> {
    let mut out = Vec::new();
    for desk in config.desks.iter().filter(|d| d.retention.is_set()) {
        out.push((desk.id.as_str(), expire(store, &desk.id, &desk.retention, now).await));
    }
    out
}

/// One ticket anonymised: `people` (its requester first) replaced by `pseudonym`, its texts,
/// raw mail and files erased, its participants and routing corrections removed, an event by
/// `actor` added. Returns the messages, files and events rewritten.
#[allow(clippy::too_many_arguments)]
async fn anonymise_ticket(
    conn: &mut AnyConnection,
    id: i64,
    people: &[String],
    pseudonym: &str,
    actor: &str,
    now: i64,
    released: &mut Vec<BlobId>,
) -> Result<(usize, usize, usize)> {
    let replace = |s: &str| replace_addresses(s, people, pseudonym);
    let (mut messages, mut files, mut events) = (0, 0, 0);
    sqlx::query("UPDATE tickets SET requester_address = $1, requester_name = NULL, subject = $2, rating_comment = NULL WHERE id = $3")
        .bind(pseudonym)
        .bind(ERASED)
        .bind(id)
        .execute(&mut *conn)
        .await?;
    for m in sqlx::query(
        "SELECT id, peer_address, from_address, to_addresses, reason, raw_blob FROM messages WHERE ticket_id = $1",
    )
    .bind(id)
    .fetch_all(&mut *conn)
    .await?
    {
        let row: i64 = m.try_get("id")?;
        released.extend(m.try_get::<Option<String>, _>("raw_blob")?.as_deref().and_then(BlobId::parse));
        released.extend(file_blobs(&mut *conn, row).await?);
        sqlx::query(
            "UPDATE messages SET subject = $1, body_text = '', raw = NULL, raw_blob = NULL, peer_address = $2, \
             from_address = $3, to_addresses = $4, reason = $5 WHERE id = $6",
        )
        .bind(ERASED)
        .bind(m.try_get::<Option<String>, _>("peer_address")?.as_deref().map(replace))
        .bind(m.try_get::<Option<String>, _>("from_address")?.as_deref().map(replace))
        .bind(replace(&m.try_get::<String, _>("to_addresses")?))
        .bind(m.try_get::<Option<String>, _>("reason")?.as_deref().map(replace))
        .bind(row)
        .execute(&mut *conn)
        .await?;
        messages += 1;
        files += sqlx::query(
            "UPDATE attachments SET content = NULL, content_blob = NULL, filename = $1 WHERE message_row = $2",
        )
        .bind(ERASED)
        .bind(row)
        .execute(&mut *conn)
        .await?
        .rows_affected() as usize;
        for o in sqlx::query("SELECT id, recipients FROM outbox WHERE message_row = $1")
            .bind(row)
            .fetch_all(&mut *conn)
            .await?
        {
            scrub_outbox(&mut *conn, o.try_get("id")?, &replace(&o.try_get::<String, _>("recipients")?)).await?;
        }
    }
    for e in sqlx::query("SELECT id, actor, detail FROM ticket_events WHERE ticket_id = $1")
        .bind(id)
        .fetch_all(&mut *conn)
        .await?
    {
        let detail: String = e.try_get("detail")?;
        let detail = serde_json::from_str::<Value>(&detail)
            .map(|v| scrub_detail(&v, people, pseudonym, true).to_string())
            .unwrap_or_else(|_| "{}".into());
        sqlx::query("UPDATE ticket_events SET actor = $1, detail = $2 WHERE id = $3")
            .bind(replace(&e.try_get::<String, _>("actor")?))
            .bind(detail)
            .bind(e.try_get::<i64, _>("id")?)
            .execute(&mut *conn)
            .await?;
        events += 1;
    }
    sqlx::query("DELETE FROM ticket_participants WHERE ticket_id = $1").bind(id).execute(&mut *conn).await?;
    sqlx::query("DELETE FROM routing_corrections WHERE ticket_id = $1").bind(id).execute(&mut *conn).await?;
    // Webhook bodies hold no personal data (`webhook::body`); the delivered and given-up ones are
    // history no one needs, the pending ones still go out.
    sqlx::query("DELETE FROM webhook_deliveries WHERE ticket_id = $1 AND status <> 'pending'")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    super::insert_event(&mut *conn, id, now, actor, "cli", "personal_data_erased", &json!({"by": actor})).await?;
    Ok((messages, files, events))
}

#[cfg(test)]
mod tests {
    use sqlx::Connection;

    /// A reader's snapshot holds the checkpoint back for a moment; the journal is still emptied
    /// once it lets go, the erased words with it.
    #[tokio::test]
    async fn the_journal_is_emptied_also_when_a_reader_holds_it_back_for_a_moment() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("j.db");
        let cfg = crate::config::StorageConfig {
            url: format!("sqlite://{}", db.display()),
            max_connections: 2,
            ..Default::default()
        };
        let store = super::Store::open(&cfg).await.unwrap();
        sqlx::query("CREATE TABLE IF NOT EXISTS words (w TEXT)").execute(store.pool()).await.unwrap();
        sqlx::query("INSERT INTO words (w) VALUES ('rahasia sekali')").execute(store.pool()).await.unwrap();
        // A reader of its own (as a test, a report or another process reads) holds a snapshot
        // from before the erasure.
        let mut reader = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display())).await.unwrap();
        sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
        let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM words").fetch_one(&mut reader).await.unwrap();
        sqlx::query("UPDATE words SET w = 'x'").execute(store.pool()).await.unwrap();
        let wal = dir.path().join("j.db-wal");
        let release = tokio::spawn(async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
            reader.close().await.unwrap();
        });
        super::empty_the_journal(&store).await.unwrap();
        release.await.unwrap();
        assert_eq!(std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0), 0, "the journal is truncated");
        store.close().await;
    }
}
