//! Participants named by agents (`#cc`, `#uncc`) and merged tickets (`#merge`): a merged ticket's
//! messages and participants move to the surviving ticket, and `ticket_merges` leads its number
//! there (one hop: earlier merges into it are repointed, so there are no chains to follow).

use sqlx::{AnyConnection, Row};

use super::StoreError;

type Result<T> = std::result::Result<T, StoreError>;

/// Removes one participant of a ticket (nothing happens when it is not one).
pub async fn remove_participant(conn: &mut AnyConnection, ticket_id: i64, address: &str) -> Result<()> {
    sqlx::query("DELETE FROM ticket_participants WHERE ticket_id = $1 AND address = $2")
        .bind(ticket_id)
        .bind(address)
        .execute(&mut *conn)
        .await?;
    Ok(())
}

/// Merges ticket `from` into ticket `into` inside the caller's transaction: the messages (with
/// their attachments) and the participants move, `from` and every ticket merged into it before
/// now lead to `into`.
pub async fn merge_tickets(conn: &mut AnyConnection, from: i64, into: i64, now: i64) -> Result<()> {
    sqlx::query("UPDATE messages SET ticket_id = $1 WHERE ticket_id = $2")
        .bind(into)
        .bind(from)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO ticket_participants (ticket_id, address, source, created_at) \
         SELECT $1, address, source, $2 FROM ticket_participants WHERE ticket_id = $3 \
         ON CONFLICT (ticket_id, address) DO NOTHING",
    )
    .bind(into)
    .bind(now)
    .bind(from)
    .execute(&mut *conn)
    .await?;
    sqlx::query("UPDATE ticket_merges SET into_id = $1 WHERE into_id = $2")
        .bind(into)
        .bind(from)
        .execute(&mut *conn)
        .await?;
    sqlx::query(
        "INSERT INTO ticket_merges (ticket_id, into_id, created_at) VALUES ($1, $2, $3) \
         ON CONFLICT (ticket_id) DO UPDATE SET into_id = excluded.into_id",
    )
    .bind(from)
    .bind(into)
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The ticket that `ticket_id` was merged into, if it was.
pub async fn merged_into(conn: &mut AnyConnection, ticket_id: i64) -> Result<Option<i64>> {
    let r = sqlx::query("SELECT into_id FROM ticket_merges WHERE ticket_id = $1")
        .bind(ticket_id)
        .fetch_optional(&mut *conn)
        .await?;
    Ok(r.map(|r| r.try_get::<i64, _>("into_id")).transpose()?)
}

/// The numbers of the tickets merged into `ticket_id` (an agent's token for one of them still
/// counts on the survivor).
pub async fn numbers_merged_into(conn: &mut AnyConnection, ticket_id: i64) -> Result<Vec<String>> {
    let rows = sqlx::query(
        "SELECT t.number FROM ticket_merges m JOIN tickets t ON t.id = m.ticket_id WHERE m.into_id = $1 ORDER BY t.id",
    )
    .bind(ticket_id)
    .fetch_all(&mut *conn)
    .await?;
    rows.iter().map(|r| r.try_get::<String, _>("number").map_err(StoreError::from)).collect()
}
