//! Learning from agents (issue 18): the `#category`, `#type` and `#priority` of an accepted agent
//! reply are recorded as labelled examples ([`crate::store::corrections`]) in the transaction
//! that applies them. Only the trimmed text of the ticket's first message and the sender's domain
//! are kept. Nothing here routes: the rules stay the only thing that does.

use serde_json::Value;

use super::{Here, Pipeline, PipelineError};
use crate::store::{self, Ticket};
use crate::ticket::TicketPatch;
use crate::ticket::command::Command;

/// One correction before its text is looked up: the field, what the router said, the ticket's
/// value before the reply and the agent's value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Said {
    pub field: &'static str,
    pub routed: Option<String>,
    pub previous: Option<String>,
    pub corrected: String,
}

/// The corrections that the accepted `commands` on ticket `t` make; `routed` is the detail of
/// the ticket's `routed` event (the router's decision), when there is one.
pub(crate) fn corrections_of(commands: &[Command], t: &Ticket, routed: Option<&Value>) -> Vec<Said> {
    let said = |k: &str| routed.and_then(|v| v.get(k)).and_then(|v| v.as_str()).map(str::to_string);
    commands
        .iter()
        .filter_map(|c| match c {
            Command::Category(cat, sub) => Some(Said {
                field: "category",
                routed: said("category").zip(said("subcategory")).map(|(c, s)| format!("{c}/{s}")),
                previous: Some(format!("{}/{}", t.category, t.subcategory)),
                corrected: format!("{cat}/{sub}"),
            }),
            Command::Type(tt) => Some(Said {
                field: "type",
                routed: said("ticket_type"),
                previous: t.ticket_type.map(|x| x.as_str().to_string()),
                corrected: tt.as_str().to_string(),
            }),
            Command::Priority(p) => Some(Said {
                field: "priority",
                // The router decides impact and urgency; the desk's matrix makes the priority.
                routed: said("impact").map(|i| match said("urgency") {
                    Some(u) => format!("impact {i}, urgency {u}"),
                    None => format!("impact {i}"),
                }),
                previous: t.priority.map(|x| x.as_str().to_string()),
                corrected: p.as_str().to_string(),
            }),
            _ => None,
        })
        .collect()
}

impl Pipeline {
    /// Records the corrections of an accepted agent reply on ticket `t` (as it was before the
    /// reply; `patch` is what the reply changed), inside the caller's transaction.
    pub(crate) async fn record_corrections(
        &self,
        tx: &mut store::Tx,
        h: &Here<'_>,
        t: &Ticket,
        patch: &TicketPatch,
        commands: &[Command],
        agent: &str,
    ) -> Result<(), PipelineError> {
        if !commands.iter().any(|c| matches!(c, Command::Category(..) | Command::Type(_) | Command::Priority(_))) {
            return Ok(());
        }
        self.events_written(tx, h).await?;
        let Some((subject, body, from, routed)) = store::corrections::first_message_and_route(tx, t.id).await? else {
            tracing::warn!(ticket = %t.number, "no first message: the agent's correction is not recorded");
            return Ok(());
        };
        let body = crate::mail::trim::trim_reply_text(&body);
        let domain = from.as_deref().and_then(|f| f.rsplit_once('@')).map(|(_, d)| d.to_ascii_lowercase());
        let (category, subcategory) =
            patch.category.clone().unwrap_or_else(|| (t.category.clone(), t.subcategory.clone()));
        let ticket_type = patch.ticket_type.or(t.ticket_type).map(|x| x.as_str());
        for s in corrections_of(commands, t, routed.as_ref()) {
            store::corrections::insert_correction(
                tx,
                &store::corrections::NewCorrection {
                    desk: &t.desk,
                    ticket_id: t.id,
                    ticket_number: t.number.as_str(),
                    field: s.field,
                    routed: s.routed,
                    previous: s.previous,
                    corrected: s.corrected,
                    category: &category,
                    subcategory: &subcategory,
                    ticket_type,
                    subject: &subject,
                    body: &body,
                    sender_domain: domain.as_deref(),
                    agent,
                    now: h.now,
                },
            )
            .await?;
        }
        Ok(())
    }
}
