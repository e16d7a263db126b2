//! Outbound webhooks queued with the change that causes them: `create` and `settle` hand the
//! change to [`Pipeline::queue_webhooks`], which asks `webhook::occurrences` what it tells
//! subscribers and writes one `webhook_deliveries` row per event and subscribing receiver, in the
//! change's transaction (the outbox worker delivers them).

use super::{Here, Pipeline};
use crate::store::{self, StoreError};
use crate::webhook::{self, Change};

/// A fresh event id: 16 random bytes as hex, the same on every retry and for every receiver of
/// the event.
fn event_id() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        // No system randomness: the clock and a process-wide counter still never repeat here.
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap_or_default();
        let seed = format!("{}|{}|{n}", std::process::id(), nanos.as_nanos());
        return hex::encode(&<sha2::Sha256 as sha2::Digest>::digest(seed.as_bytes())[..16]);
    }
    hex::encode(bytes)
}

impl Pipeline {
    /// Queues the webhook events of `change` for the desk's subscribers, in the caller's
    /// transaction. Nothing when the desk has no subscription.
    pub(crate) async fn queue_webhooks(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        change: &Change<'_>,
    ) -> Result<(), StoreError> {
        let subs = &h.desk.webhooks;
        if subs.is_empty() {
            return Ok(());
        }
        let mut queued = Vec::new();
        for o in webhook::occurrences(change) {
            let to: Vec<String> = subs.iter().filter(|s| s.wants(o.kind)).map(|s| s.key()).collect();
            if to.is_empty() {
                continue;
            }
            let id = event_id();
            let body = webhook::body(&id, &o, change.after, h.now);
            queued.extend(to.into_iter().map(|key| (id.clone(), key, o.kind.as_str(), body.clone())));
        }
        let rows: Vec<store::NewDelivery<'_>> = queued
            .iter()
            .map(|(id, key, kind, body)| store::NewDelivery {
                event_id: id,
                desk: &h.desk.id,
                subscription: key,
                event_type: kind,
                ticket_id: change.after.id,
                body,
            })
            .collect();
        store::queue_webhooks(tx, h.now, &rows).await
    }
}
