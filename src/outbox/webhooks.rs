//! The outbox worker's webhook side: claims the head delivery of each subscription
//! (`store::claim_webhooks`), POSTs it signed (`channel::webhook`), and records the attempt:
//! delivered, tried again after `webhook::after_failure`'s backoff, or given up once the
//! subscription's give-up time has passed (a `webhook_given_up` ticket event; the `failed` rows
//! are the `loket_webhooks{state="failed"}` metric). A receiver that is down delays its events,
//! in order, and loses none within that time.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::channel::ChannelError;
use crate::channel::webhook::WebhookClient;
use crate::config::Config;
use crate::store::{self, Store, WebhookItem, WebhookOutcome};
use crate::webhook::{self, RetryPolicy, Subscription};

pub struct WebhookWorker {
    pub store: Store,
    pub config: Arc<Config>,
    pub client: WebhookClient,
    pub worker_id: String,
}

impl WebhookWorker {
    pub fn new(store: Store, config: Arc<Config>, worker_id: String) -> Result<Self, ChannelError> {
        Ok(Self { store, config, client: WebhookClient::new()?, worker_id })
    }

    /// Whether any desk has a subscription (otherwise the task is not started).
    pub fn needed(config: &Config) -> bool {
        config.desks.iter().any(|d| !d.webhooks.is_empty())
    }

    /// Delivers until `cancel` fires, then lets the POSTs in flight finish. Up to
    /// `outbound.concurrency` POSTs run at once, each on its own: a slow receiver holds up only
    /// its own subscription (its head stays leased while in flight, so no round claims it again).
    pub async fn run(self: Arc<Self>, cancel: CancellationToken) {
        let poll = Duration::from_millis(self.config.outbound.poll_interval_ms.max(10));
        let limit = self.config.outbound.concurrency.max(1);
        let mut in_flight = tokio::task::JoinSet::new();
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            let room = limit.saturating_sub(in_flight.len());
            if room > 0 {
                match self.claim(room).await {
                    Ok(items) => {
                        failures = 0;
                        for item in items {
                            let me = self.clone();
                            in_flight.spawn(async move { me.deliver(item).await });
                        }
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %e, "webhooks: store error; retrying");
                    }
                }
            }
            let wait = if failures > 0 { poll * failures.min(30) } else { poll };
            tokio::select! {
                _ = cancel.cancelled() => break,
                Some(done) = in_flight.join_next(), if !in_flight.is_empty() => log_done(done),
                _ = tokio::time::sleep(wait) => {}
            }
        }
        while let Some(done) = in_flight.join_next().await {
            log_done(done);
        }
        tracing::info!("webhook worker stopped");
    }

    fn subscription(&self, item: &WebhookItem) -> Option<&Subscription> {
        let desk = self.config.desk(&item.desk)?;
        desk.webhooks.iter().find(|s| s.key() == item.subscription)
    }

    /// Claims the due heads of up to `limit` subscriptions, leased for the longest POST.
    async fn claim(&self, limit: usize) -> Result<Vec<WebhookItem>, store::StoreError> {
        let now = crate::now_ms();
        let longest = self.config.desks.iter().flat_map(|d| &d.webhooks).map(|s| s.timeout).max();
        let longest = longest.unwrap_or(Duration::from_secs(webhook::DEFAULT_TIMEOUT_SECS));
        let lease = now + longest.as_millis() as i64 + 5000;
        store::claim_webhooks(self.store.pool(), self.store.backend(), &self.worker_id, now, lease, limit as i64).await
    }

    async fn deliver(&self, item: WebhookItem) -> Result<(), store::StoreError> {
        let attempt = item.attempts as u32 + 1;
        let outcome = match self.subscription(&item) {
            None => {
                tracing::warn!(desk = %item.desk, event = %item.event_id, "webhook: subscription no longer configured; given up");
                WebhookOutcome::GiveUp { error: "the subscription is no longer configured".into() }
            }
            Some(sub) => {
                let sent = self
                    .client
                    .post(sub, &item.event_id, &item.event_type, &item.body, crate::now_ms().div_euclid(1000))
                    .await;
                let target = webhook::redacted(&sub.url);
                match sent {
                    Ok(()) => {
                        tracing::info!(desk = %item.desk, to = %target, event = %item.event_id, kind = %item.event_type, attempt, "webhook delivered");
                        WebhookOutcome::Delivered
                    }
                    Err(e) => {
                        let policy = RetryPolicy {
                            initial: Duration::from_secs(self.config.outbound.initial_backoff_secs.max(1)),
                            max: Duration::from_secs(self.config.outbound.max_backoff_secs.max(1)),
                            give_up_after: sub.give_up_after,
                        };
                        match webhook::after_failure(&policy, item.created_at, attempt, crate::now_ms()) {
                            Some(at) => {
                                tracing::warn!(desk = %item.desk, to = %target, event = %item.event_id, attempt, error = %e, "webhook failed; will retry");
                                WebhookOutcome::Retry { error: e.to_string(), at }
                            }
                            None => {
                                tracing::error!(desk = %item.desk, to = %target, event = %item.event_id, attempt, error = %e, "webhook given up");
                                WebhookOutcome::GiveUp { error: e.to_string() }
                            }
                        }
                    }
                }
            }
        };
        store::record_webhook(self.store.pool(), self.store.backend(), &item, crate::now_ms(), &outcome).await
    }
}

/// A delivery task's end: a store error recording it is logged (the lease runs out and the
/// event is tried again).
fn log_done(done: Result<Result<(), store::StoreError>, tokio::task::JoinError>) {
    match done {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "webhooks: attempt not recorded; the event will be tried again"),
        Err(e) => tracing::error!(error = %e, "webhooks: a delivery task died"),
    }
}
