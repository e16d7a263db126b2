//! Alerts to a desk's operators (its supervisors; without any, every agent) about an inbox's
//! OAuth credential: the first authentication failure of an outage and the client secret's early
//! warning. The alert row (`store::claim_alert`) and the queued mails are one transaction, so each
//! alert goes out exactly once, across restarts and instances; only the outbox sends it.

use super::{Pipeline, PipelineError};
use crate::config::{Desk, InboxConfig};
use crate::oauth::alert::AlertKind;
use crate::store;
use crate::templates::{MailContext, PersonCtx};

impl Pipeline {
    /// Queues the `oauth_alert` mail about `credential` to the desk's operators unless this alert
    /// (`kind`, `period`) was sent before; `text` is what failed or when the secret ends. Returns
    /// how many mails were queued.
    #[allow(clippy::too_many_arguments)]
    pub async fn alert_operators(
        &self,
        desk: &Desk,
        inbox: &InboxConfig,
        credential: &str,
        mailbox: &str,
        kind: AlertKind,
        period: &str,
        text: &str,
        now: i64,
    ) -> Result<usize, PipelineError> {
        let h = self.here(desk, inbox, now)?;
        let mut tx = self.store.begin().await?;
        if !store::claim_alert(&mut tx, credential, kind.as_str(), period, now).await? {
            return Ok(0);
        }
        let supervisors = desk.supervisors();
        let operators = if supervisors.is_empty() { desk.agents.iter().collect() } else { supervisors };
        for agent in &operators {
            let ctx = MailContext {
                desk: self.desk_ctx(&h),
                agent: PersonCtx { name: agent.name.clone(), address: agent.address.to_string() },
                event: kind.as_str().to_string(),
                sender: PersonCtx { name: inbox.name.clone(), address: mailbox.to_string() },
                text: text.to_string(),
                ..Default::default()
            };
            let seed = format!("{credential}|{}|{}|{now}", kind.as_str(), agent.address);
            let message = ("oauth_alert", desk.language, &ctx);
            self.queue_ticketless(&mut tx, &h, &agent.address, Some(&agent.name), message, "oauth-alert", &seed)
                .await?;
        }
        self.store.commit(tx).await?;
        self.outbox_wakeup.notify_one();
        tracing::warn!(desk = %desk.id, inbox = %inbox.name, alert = kind.as_str(), operators = operators.len(), "operators alerted");
        Ok(operators.len())
    }
}
