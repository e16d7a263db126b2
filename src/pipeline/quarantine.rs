//! `loket quarantine release ID` and `drop ID`: a quarantined message's stored bytes run through
//! the pipeline exactly once (the entry is marked released in the transaction that records the
//! message, so a second release, concurrent or later, finds it released), or its bytes deleted;
//! each with an audit entry.

use serde_json::json;

use super::{Action, Outcome, Pipeline, PipelineError};
use crate::mail::parse;
use crate::store::{self, StoreError};

/// Why a release or drop did nothing.
#[derive(Debug, thiserror::Error)]
pub enum QuarantineError {
    #[error("no quarantined message {0}")]
    NotFound(i64),
    #[error("quarantined message {0} was already released")]
    AlreadyReleased(i64),
    #[error("quarantined message {0} was dropped")]
    Dropped(i64),
    #[error("quarantined message {0} kept only its headers (it was too large); it cannot be released")]
    HeadersOnly(i64),
    #[error("quarantined message {id} came through inbox `{inbox}`, which the configuration no longer has")]
    UnknownInbox { id: i64, inbox: String },
    /// The pipeline would quarantine it again: nothing was changed.
    #[error("quarantined message {id} is still refused: {reason}")]
    StillRefused { id: i64, reason: String },
    #[error(transparent)]
    Pipeline(#[from] PipelineError),
}

impl From<StoreError> for QuarantineError {
    fn from(e: StoreError) -> Self {
        QuarantineError::Pipeline(PipelineError::Store(e))
    }
}

impl Pipeline {
    /// Runs quarantined message `id` through the pipeline (without the hygiene screen: an
    /// operator looked at it), once. `actor` names who released it in the audit entry.
    pub async fn release_quarantined(&self, id: i64, actor: &str, now: i64) -> Result<Outcome, QuarantineError> {
        let mut tx = self.store.begin().await?;
        let entry =
            store::quarantine_entry(&mut tx, self.store.files(), id).await?.ok_or(QuarantineError::NotFound(id))?;
        if entry.released_at.is_some() {
            return Err(QuarantineError::AlreadyReleased(id));
        }
        if entry.dropped_at.is_some() {
            return Err(QuarantineError::Dropped(id));
        }
        if (entry.raw.len() as i64) < entry.size {
            return Err(QuarantineError::HeadersOnly(id));
        }
        let Some((desk, ib)) = self.config.inbox(&entry.inbox) else {
            return Err(QuarantineError::UnknownInbox { id, inbox: entry.inbox });
        };
        if !store::mark_quarantine_released(&mut tx, id, now).await? {
            return Err(QuarantineError::AlreadyReleased(id));
        }
        let mail = parse::parse(&entry.raw).map_err(|e| QuarantineError::StillRefused { id, reason: e.to_string() })?;
        let outcome = self.apply(&mut tx, desk, ib, &entry.raw, &mail, None, None, now, true).await?;
        if matches!(outcome.action, Action::Quarantined) {
            let reason = outcome.reason.unwrap_or_default();
            return Err(QuarantineError::StillRefused { id, reason });
        }
        let detail = json!({ "action": outcome.action.as_str(), "ticket": outcome.ticket.as_ref().map(|t| t.as_str()),
                             "reason": outcome.reason });
        store::insert_quarantine_audit(&mut tx, id, now, actor, "released", &detail).await?;
        self.store.commit(tx).await?;
        self.outbox_wakeup.notify_one();
        tracing::info!(desk = %desk.id, inbox = %ib.name, id, action = outcome.action.as_str(), "quarantined message released");
        Ok(outcome)
    }

    /// Deletes quarantined message `id`'s bytes (the entry stays, so a redelivery is still a
    /// duplicate), with an audit entry naming `actor`.
    pub async fn drop_quarantined(&self, id: i64, actor: &str, now: i64) -> Result<(), QuarantineError> {
        let started = crate::now_ms();
        let mut tx = self.store.begin().await?;
        let entry =
            store::quarantine_entry(&mut tx, self.store.files(), id).await?.ok_or(QuarantineError::NotFound(id))?;
        if entry.released_at.is_some() {
            return Err(QuarantineError::AlreadyReleased(id));
        }
        if !store::mark_quarantine_dropped(&mut tx, id, now).await? {
            return Err(QuarantineError::Dropped(id));
        }
        let detail = json!({ "reason": entry.reason, "size": entry.size, "desk": entry.desk, "inbox": entry.inbox });
        store::insert_quarantine_audit(&mut tx, id, now, actor, "dropped", &detail).await?;
        self.store.commit(tx).await?;
        // The bytes on disk go with the row's name of them.
        if let Some(blob) = &entry.raw_blob {
            store::blobs::release(&self.store, std::slice::from_ref(blob), started).await?;
        }
        tracing::warn!(id, actor, "quarantined message dropped");
        Ok(())
    }
}
