//! What an API client asks of a ticket, pure: the JSON bodies of `POST …/messages` and `PATCH
//! …/tickets/{number}` read as an agent's reply ([`AgentReply`]: the same commands an agent
//! writes as `#resolve`, `#assign`, `#category`, …), so that `ticket::decide` judges them with
//! the agents' rules and the one transition table.

use serde::Deserialize;

use crate::domain::{Priority, TicketStatus, TicketType};
use crate::ticket::command::{AgentReply, Command};

/// Longest text a call may carry (a message, a note, a resolution).
pub const MAX_TEXT_CHARS: usize = 16_000;

/// `POST /api/v1/tickets/{number}/messages`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewMessage {
    pub text: String,
    /// An internal note for the agents (never sent to the requester).
    #[serde(default)]
    pub internal: bool,
}

/// `PATCH /api/v1/tickets/{number}`: each field present is one change.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Change {
    pub status: Option<TicketStatus>,
    /// An agent (address or name) or a group id of the desk.
    pub assignee: Option<String>,
    /// `CATEGORY/SUBCATEGORY` of the desk's catalogue.
    pub category: Option<String>,
    #[serde(rename = "type")]
    pub ticket_type: Option<TicketType>,
    pub priority: Option<Priority>,
    /// Words for the requester with the change (a resolution's, a pending question), or the
    /// reason of a rejection.
    pub text: Option<String>,
}

/// Why a body cannot be read as a reply.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct Invalid(pub String);

fn text_ok(text: &str) -> Result<String, Invalid> {
    let t = text.trim();
    if t.chars().count() > MAX_TEXT_CHARS {
        return Err(Invalid(format!("text: longer than {MAX_TEXT_CHARS} characters")));
    }
    if t.contains('\0') {
        return Err(Invalid("text: contains a NUL character".into()));
    }
    Ok(t.to_string())
}

/// A message: the agent's words to the requester, or a note (`#note`).
pub fn message(m: &NewMessage) -> Result<AgentReply, Invalid> {
    let text = text_ok(&m.text)?;
    if text.is_empty() {
        return Err(Invalid("text: empty".into()));
    }
    let commands = if m.internal { vec![Command::Note] } else { Vec::new() };
    Ok(AgentReply { commands, text })
}

/// A change: the commands in the order an agent would write them (the route first, then the
/// hand-over, then the status).
pub fn change(c: &Change) -> Result<AgentReply, Invalid> {
    let text = text_ok(c.text.as_deref().unwrap_or(""))?;
    let mut commands = Vec::new();
    if let Some(cat) = &c.category {
        match cat.split_once('/') {
            Some((a, b)) if !a.trim().is_empty() && !b.trim().is_empty() && !b.contains('/') => {
                commands.push(Command::Category(a.trim().to_ascii_lowercase(), b.trim().to_ascii_lowercase()));
            }
            _ => return Err(Invalid(format!("category `{cat}`: use CATEGORY/SUBCATEGORY"))),
        }
    }
    if let Some(t) = c.ticket_type {
        commands.push(Command::Type(t));
    }
    if let Some(p) = c.priority {
        commands.push(Command::Priority(p));
    }
    if let Some(a) = &c.assignee {
        let a = a.trim();
        if a.is_empty() || a.len() > 320 {
            return Err(Invalid("assignee: an agent's address or name, or a group id".into()));
        }
        commands.push(Command::Assign(a.to_string()));
    }
    match c.status {
        None => {}
        Some(TicketStatus::Resolved) => commands.push(Command::Resolve),
        Some(TicketStatus::Pending) => commands.push(Command::Pending),
        Some(TicketStatus::Closed) => commands.push(Command::Close),
        Some(TicketStatus::Rejected) if text.is_empty() => {
            return Err(Invalid("status rejected: give the reason in `text`".into()));
        }
        Some(TicketStatus::Rejected) => commands.push(Command::Reject(text.clone())),
        Some(s @ (TicketStatus::New | TicketStatus::Open)) => {
            return Err(Invalid(format!(
                "status `{s}`: a ticket becomes open when the desk acts on it; set resolved, pending, closed or rejected"
            )));
        }
    }
    if commands.is_empty() {
        return Err(Invalid("nothing to change: give status, assignee, category, type or priority".into()));
    }
    // A rejection's reason is its text; no second copy goes to the requester.
    let text = if c.status == Some(TicketStatus::Rejected) { String::new() } else { text };
    Ok(AgentReply { commands, text })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_is_a_reply_or_a_note() {
        let r = message(&NewMessage { text: " Sudah kami reset. ".into(), internal: false }).unwrap();
        assert_eq!(r, AgentReply { commands: vec![], text: "Sudah kami reset.".into() });
        let r = message(&NewMessage { text: "cek log".into(), internal: true }).unwrap();
        assert_eq!(r.commands, vec![Command::Note]);
        assert!(message(&NewMessage { text: "  ".into(), internal: false }).is_err());
        assert!(message(&NewMessage { text: "x".repeat(MAX_TEXT_CHARS + 1), internal: false }).is_err());
    }

    #[test]
    fn a_change_becomes_the_agents_commands_in_order() {
        let c = Change {
            status: Some(TicketStatus::Resolved),
            assignee: Some("apps".into()),
            category: Some("Aplikasi/SISP".into()),
            ticket_type: Some(TicketType::Incident),
            priority: Some(Priority::P2),
            text: Some("Selesai.".into()),
        };
        let r = change(&c).unwrap();
        assert_eq!(
            r.commands,
            vec![
                Command::Category("aplikasi".into(), "sisp".into()),
                Command::Type(TicketType::Incident),
                Command::Priority(Priority::P2),
                Command::Assign("apps".into()),
                Command::Resolve,
            ]
        );
        assert_eq!(r.text, "Selesai.");
    }

    #[test]
    fn a_rejection_needs_its_reason_and_open_is_not_a_command() {
        let reject = Change { status: Some(TicketStatus::Rejected), ..Default::default() };
        assert!(change(&reject).is_err());
        let r = change(&Change { text: Some("bukan layanan kami".into()), ..reject }).unwrap();
        assert_eq!(r.commands, vec![Command::Reject("bukan layanan kami".into())]);
        assert_eq!(r.text, "");
        assert!(change(&Change { status: Some(TicketStatus::Open), ..Default::default() }).is_err());
        assert!(change(&Change::default()).is_err(), "an empty change");
        assert!(change(&Change { category: Some("aplikasi".into()), ..Default::default() }).is_err());
    }

    #[test]
    fn bodies_with_unknown_fields_are_refused() {
        assert!(serde_json::from_str::<Change>(r#"{"status":"closed","owner":"x"}"#).is_err());
        assert!(serde_json::from_str::<Change>(r#"{"status":"done"}"#).is_err());
        let c: Change = serde_json::from_str(r#"{"type":"request","priority":"P3"}"#).unwrap();
        assert_eq!((c.ticket_type, c.priority), (Some(TicketType::Request), Some(Priority::P3)));
    }
}
