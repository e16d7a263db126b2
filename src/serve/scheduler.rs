//! The response check that runs all the time: a task that sleeps until the next due threshold
//! (one indexed query; it never scans every ticket), runs [`crate::pipeline::Pipeline::sla_tick`],
//! and goes back to sleep. New tickets wake it through the same notifier as the outbox worker,
//! and it re-reads the next deadline at least every `max_sleep`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::pipeline::Pipeline;
use crate::store;

pub struct Scheduler {
    pub pipeline: Pipeline,
    pub wakeup: Arc<Notify>,
    pub max_sleep: Duration,
}

impl Scheduler {
    pub async fn run(self, cancel: CancellationToken) {
        self.run_ref(cancel).await
    }

    pub async fn run_ref(&self, cancel: CancellationToken) {
        let mut failures = 0u32;
        while !cancel.is_cancelled() {
            let now = crate::now_ms();
            let wait = match self.pipeline.sla_tick(now).await {
                Ok(report) => {
                    failures = 0;
                    if report.fired() > 0 {
                        tracing::info!(
                            warnings = report.warnings,
                            breaches = report.breaches,
                            auto_closed = report.auto_closed,
                            "SLA check"
                        );
                    }
                    if report.more {
                        continue;
                    }
                    match store::sla::next_wakeup(self.pipeline.store().pool()).await {
                        Ok(Some(at)) => {
                            Duration::from_millis((at - crate::now_ms()).clamp(0, i64::MAX) as u64).min(self.max_sleep)
                        }
                        Ok(None) => self.max_sleep,
                        Err(e) => {
                            tracing::warn!(error = %e, "SLA scheduler: store error");
                            Duration::from_secs(5)
                        }
                    }
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %e, "SLA scheduler: tick failed; retrying");
                    Duration::from_secs((2u64 << failures.min(5)).min(60))
                }
            };
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = self.wakeup.notified() => {}
                _ = tokio::time::sleep(wait.max(Duration::from_millis(50))) => {}
            }
        }
        tracing::info!("SLA scheduler stopped");
    }
}
