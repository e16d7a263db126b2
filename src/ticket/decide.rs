//! What a message or the scheduler does to a ticket, decided in one place. Every way a ticket is
//! touched after it exists — the requester's mail or chat message (with what a button said), a
//! participant's mail, an agent's reply with its commands, the auto-close — is an [`Intent`];
//! [`decide`] returns the [`Decision`]: whether the message joins the ticket or opens a linked
//! one, the events, the [`TicketPatch`], and the messages to send. [`clock_moves`] says what a
//! change of the ticket does to its SLA clocks. No store, no clock, no I/O: `now` is an argument,
//! and the pipeline loads, decides and applies in one transaction.
//!
//! Status changes follow one table, [`TRANSITIONS`]; a decision never leaves it.

use serde_json::{Value, json};

use super::answer::{Answer, read_answer};
use super::command::{AgentReply, Command};
use super::{Ticket, TicketPatch};
use crate::catalogue::Missing;
use crate::config::{Agent, Desk};
use crate::domain::{PendingReason, TicketStatus};

pub const DAY_MS: i64 = 86_400_000;

/// Every status change a ticket may make. Closed and rejected are final: a reply to such a
/// ticket opens a linked one.
pub const TRANSITIONS: &[(TicketStatus, &[TicketStatus])] = {
    use TicketStatus::*;
    &[
        (New, &[Open, Pending, Resolved, Closed, Rejected]),
        (Open, &[Pending, Resolved, Closed, Rejected]),
        (Pending, &[Open, Resolved, Closed, Rejected]),
        (Resolved, &[Open, Pending, Closed, Rejected]),
        (Closed, &[]),
        (Rejected, &[]),
    ]
};

/// Whether `from → to` is in [`TRANSITIONS`] (staying is always allowed).
pub fn may_move(from: TicketStatus, to: TicketStatus) -> bool {
    from == to || TRANSITIONS.iter().any(|(f, tos)| *f == from && tos.contains(&to))
}

/// What a requester's message says besides its words: a chat button or command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Said {
    /// Only the words: read them.
    Text,
    Confirm,
    Reopen,
}

/// One way a ticket is touched.
#[derive(Debug, Clone)]
pub enum Intent<'a> {
    /// The requester wrote. `text` is the part written now; `rating` the rating it gives (from a
    /// chat command or read from the text); `missing` what the catalogue still requires, judged
    /// by the caller when the ticket waits on requirements; `refused_files` whether attachments
    /// were refused by the desk's policy; `inbox` where it arrived.
    Requester {
        text: &'a str,
        said: Said,
        rating: Option<(u8, String)>,
        missing: &'a [Missing],
        refused_files: bool,
        inbox: &'a str,
    },
    /// Someone the desk admitted from the request's To/Cc wrote.
    Participant { text: &'a str, inbox: &'a str },
    /// A desk agent replied through the ticket's thread: `reply` is the reply's text and
    /// commands, or why it cannot be read as a verified agent reply (no valid token, a bad
    /// command line).
    Agent { agent: &'a Agent, reply: Result<AgentReply, String> },
    /// The scheduler: the reopen window of a resolved ticket passed.
    AutoClose,
}

/// Where the message goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Flow {
    /// Stored on this ticket (the scheduler's intents store nothing).
    Append,
    /// A new ticket linked to this one opens with the message; nothing else here changes.
    FollowUp { reason: String },
}

/// Who an event is recorded as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Actor {
    /// The sender of the message (requester, participant or agent).
    Sender,
    Loket,
}

/// An audit event. `cites_message` adds the stored message's row as `"message"` to `detail`.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    pub actor: Actor,
    pub kind: &'static str,
    pub detail: Value,
    pub cites_message: bool,
}

/// A message to send, rendered from the ticket as it is after the patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Send {
    /// To the requester with `template`; `text` fills the template's text and reason. `answering`:
    /// threaded under the message being handled. `personal`: an agent's words (not an automatic
    /// reply). `record`: a `sent_to_requester` event cites the queued message.
    Requester {
        template: &'static str,
        text: String,
        missing: Vec<Missing>,
        refused_files: bool,
        answering: bool,
        personal: bool,
        record: bool,
    },
    /// To the ticket's agents (the assignee, else the group, else layer 1), limited per sender.
    Agents { event: &'static str, text: String },
    /// To one agent (assigned, escalated).
    Agent { address: String, event: &'static str, text: String },
    /// Back to the agent who wrote: what changed, or why nothing did. `unverified`: answered as
    /// an automatic reply under the agent's message, without a token.
    Actor { template: &'static str, reason: String, changes: Vec<String>, unverified: bool },
}

/// The effects of one intent on one ticket.
#[derive(Debug, Clone, PartialEq)]
pub struct Decision {
    pub flow: Flow,
    /// Recorded in order, before the patch.
    pub events: Vec<Event>,
    pub patch: TicketPatch,
    /// Sent in order, after the patch.
    pub sends: Vec<Send>,
    /// Why, for the log and the outcome.
    pub reason: Option<String>,
}

impl Decision {
    fn append() -> Self {
        Decision {
            flow: Flow::Append,
            events: Vec::new(),
            patch: TicketPatch::default(),
            sends: Vec::new(),
            reason: None,
        }
    }

    fn follow_up(reason: String) -> Self {
        Decision { flow: Flow::FollowUp { reason }, ..Decision::append() }
    }

    fn event(&mut self, actor: Actor, kind: &'static str, detail: Value, cites_message: bool) {
        self.events.push(Event { actor, kind, detail, cites_message });
    }

    fn tell_requester(&mut self, template: &'static str, answering: bool) {
        self.sends.push(Send::Requester {
            template,
            text: String::new(),
            missing: Vec::new(),
            refused_files: false,
            answering,
            personal: false,
            record: false,
        });
    }
}

/// What `intent` does to ticket `t` of `desk` at `now`.
pub fn decide(t: &Ticket, intent: &Intent<'_>, desk: &Desk, now: i64) -> Decision {
    let d = match intent {
        Intent::Requester { text, said, rating, missing, refused_files, inbox } => {
            requester(t, text, said, rating.clone(), missing, *refused_files, inbox, desk, now)
        }
        Intent::Participant { text, inbox } => participant(t, text, inbox),
        Intent::Agent { agent, reply } => match reply {
            Ok(reply) => agent_reply(t, agent, reply, desk, now),
            Err(reason) => refusal(reason.clone(), true),
        },
        Intent::AutoClose => auto_close(t, desk, now),
    };
    debug_assert!(d.patch.status.is_none_or(|s| may_move(t.status, s)), "{:?} → {:?}", t.status, d.patch.status);
    d
}

#[allow(clippy::too_many_arguments)]
fn requester(
    t: &Ticket,
    text: &str,
    said: &Said,
    rating: Option<(u8, String)>,
    missing: &[Missing],
    refused_files: bool,
    inbox: &str,
    desk: &Desk,
    now: i64,
) -> Decision {
    let late =
        t.status == TicketStatus::Resolved && t.resolved_at.is_some_and(|r| now - r > desk.reopen_days as i64 * DAY_MS);
    if t.status == TicketStatus::Closed
        && t.rating_requested_at.is_some()
        && t.rating.is_none()
        && let Some((rating, comment)) = rating
    {
        let mut d = Decision::append();
        d.event(Actor::Sender, "rated", json!({ "rating": rating, "comment": comment }), true);
        d.patch.rating = Some((rating, comment));
        d.tell_requester("rating_thanks", true);
        d.reason = Some("rating recorded".into());
        return d;
    }
    if t.is_finished() || late {
        let why = if late { "reopen window passed" } else { "ticket closed" };
        return Decision::follow_up(format!("follow-up of {} ({why})", t.number));
    }
    let mut d = Decision::append();
    if refused_files {
        d.sends.push(Send::Requester {
            template: "attachments_refused",
            text: String::new(),
            missing: Vec::new(),
            refused_files: true,
            answering: true,
            personal: false,
            record: false,
        });
    }
    match t.status {
        TicketStatus::Resolved => {
            let answer = match said {
                Said::Confirm => Answer::Confirm,
                Said::Reopen => Answer::Reopen,
                Said::Text => read_answer(text),
            };
            match answer {
                Answer::Unclear => {
                    // Never guessed: the words are kept and the requester is asked the two exact
                    // words (buttons in chat).
                    d.event(Actor::Sender, "answer_unclear", json!({}), true);
                    d.tell_requester("confirm_question", true);
                    d.reason = Some("answer to the resolution notice unclear: asked again".into());
                }
                Answer::Confirm => {
                    d.patch.status = Some(TicketStatus::Closed);
                    d.patch.closed_at = Some(Some(now));
                    d.patch.rating_requested_at = Some(now);
                    d.event(Actor::Sender, "confirmed", json!({}), true);
                    d.event(Actor::Loket, "closed", json!({ "by": "requester confirmation" }), false);
                    d.tell_requester("closed_rating", true);
                }
                Answer::Reopen => {
                    d.patch.status = Some(TicketStatus::Open);
                    d.patch.resolved_at = Some(None);
                    d.event(Actor::Sender, "reopened", json!({}), true);
                    d.tell_requester("reopened", true);
                    d.sends.push(Send::Agents { event: "reopened", text: text.to_string() });
                }
            }
        }
        TicketStatus::Pending => {
            // Waiting on the requester: their reply puts the ticket back in the queue, unless it
            // still lacks a requirement.
            let requirements = t.pending_reason == Some(PendingReason::Requirements);
            if missing.is_empty() || !requirements {
                d.patch.status = Some(TicketStatus::Open);
                d.patch.pending_reason = Some(None);
                let (kind, notice) = if requirements {
                    ("requirements_complete", "requirements")
                } else {
                    ("requester_replied", "reply")
                };
                d.event(Actor::Sender, kind, json!({}), true);
                d.sends.push(Send::Agents { event: notice, text: text.to_string() });
            } else {
                d.event(Actor::Sender, "message_received", json!({ "still_missing": missing }), true);
                d.sends.push(Send::Requester {
                    template: "incomplete",
                    text: String::new(),
                    missing: missing.to_vec(),
                    refused_files: false,
                    answering: true,
                    personal: false,
                    record: false,
                });
            }
        }
        _ => {
            d.event(Actor::Sender, "message_received", json!({ "kind": "human", "inbox": inbox }), true);
            d.sends.push(Send::Agents { event: "reply", text: text.to_string() });
        }
    }
    d
}

fn participant(t: &Ticket, text: &str, inbox: &str) -> Decision {
    if t.is_finished() {
        return Decision::follow_up(format!("follow-up of {} (ticket closed)", t.number));
    }
    let mut d = Decision::append();
    let detail = json!({ "kind": "human", "role": "participant", "inbox": inbox });
    d.event(Actor::Sender, "message_received", detail, true);
    d.sends.push(Send::Agents { event: "participant", text: text.to_string() });
    d.reason = Some("participant".into());
    d
}

/// A refused agent reply: recorded, the agent told why, the ticket unchanged.
fn refusal(reason: String, unverified: bool) -> Decision {
    let mut d = Decision::append();
    d.event(Actor::Sender, "agent_reply_refused", json!({ "reason": reason }), true);
    d.sends.push(Send::Actor { template: "agent_refused", reason: reason.clone(), changes: Vec::new(), unverified });
    d.reason = Some(reason);
    d
}

/// The status a command moves the ticket to, if it is a status command.
fn status_of(c: &Command) -> Option<TicketStatus> {
    match c {
        Command::Resolve => Some(TicketStatus::Resolved),
        Command::Pending => Some(TicketStatus::Pending),
        Command::Reject(_) => Some(TicketStatus::Rejected),
        Command::Close => Some(TicketStatus::Closed),
        _ => None,
    }
}

fn agent_reply(t: &Ticket, agent: &Agent, reply: &AgentReply, desk: &Desk, now: i64) -> Decision {
    // Check everything first: a reply with one bad command changes nothing.
    let mut category = (t.category.clone(), t.subcategory.clone());
    let mut ttype = t.ticket_type;
    let mut problems = Vec::new();
    for c in &reply.commands {
        match c {
            Command::Assign(k) if desk.group(k).is_none() && desk.find_agent(k).is_none() => {
                problems.push(format!("#assign {k}: no such agent or group"));
            }
            Command::Category(c, s) => match desk.catalogue.subcategory(c, s) {
                Some(sub) => {
                    category = (c.clone(), s.clone());
                    if ttype.is_some_and(|t| !sub.types.contains(&t)) {
                        ttype = sub.types.first().copied();
                    }
                }
                None => problems.push(format!("#category {c}/{s}: not in the {} catalogue", desk.id)),
            },
            Command::Type(tt) => match desk.catalogue.subcategory(&category.0, &category.1) {
                Some(sub) if !sub.types.contains(tt) => problems.push(format!(
                    "#type {tt}: {}/{} allows {}",
                    category.0,
                    category.1,
                    sub.types.iter().map(|t| t.as_str()).collect::<Vec<_>>().join(", ")
                )),
                _ => ttype = Some(*tt),
            },
            Command::Escalate
                if desk.next_layer(t.group_id.as_deref(), &category.0, &category.1).is_none()
                    && desk.supervisors().is_empty() =>
            {
                problems.push("#escalate: no higher layer and no supervisor configured".into());
            }
            c if t.is_finished() && status_of(c).is_some() => problems.push(format!(
                "#{}: ticket {} is {}; a reply from the requester opens a follow-up",
                c.name(),
                t.number,
                t.status
            )),
            _ => {}
        }
    }
    if !problems.is_empty() {
        return refusal(problems.join("; "), false);
    }

    let mut d = Decision::append();
    let mut changes = Vec::new();
    let mut to_requester: Vec<(&'static str, String)> = Vec::new();
    let mut notify: Vec<(&Agent, &'static str)> = Vec::new();
    let text = reply.text.clone();
    let internal = reply.has("note");
    let mut status = t.status;
    let mut group = t.group_id.clone();
    let mut assignee = t.assignee.clone();
    for c in &reply.commands {
        let detail = match c {
            Command::Resolve => {
                status = TicketStatus::Resolved;
                d.patch.resolved_at = Some(Some(now));
                d.patch.pending_reason = Some(None);
                if !internal {
                    to_requester.push(("resolution", text.clone()));
                }
                "status: resolved".to_string()
            }
            Command::Pending => {
                status = TicketStatus::Pending;
                d.patch.pending_reason = Some(Some(PendingReason::Requester));
                "status: pending (waiting for the requester)".to_string()
            }
            Command::Assign(k) => {
                if let Some(g) = desk.group(k) {
                    group = Some(g.id.clone());
                    assignee = None;
                    notify.extend(desk.members(&g.id).into_iter().map(|a| (a, "assigned")));
                    format!("assigned to group {}", g.id)
                } else {
                    let a = desk.find_agent(k).expect("checked above");
                    assignee = Some(a.address.to_string());
                    if a.address != agent.address {
                        notify.push((a, "assigned"));
                    }
                    format!("assigned to {}", a.name)
                }
            }
            Command::Escalate => match desk.next_layer(group.as_deref(), &category.0, &category.1) {
                Some(g) => {
                    group = Some(g.id.clone());
                    assignee = None;
                    notify.extend(desk.members(&g.id).into_iter().map(|a| (a, "escalated")));
                    format!("escalated to {} (layer {})", g.id, g.layer)
                }
                None => {
                    notify.extend(desk.supervisors().into_iter().map(|a| (a, "escalated")));
                    "escalated to the supervisors".to_string()
                }
            },
            Command::Note => "internal note added".to_string(),
            Command::Priority(p) => {
                d.patch.priority = Some(*p);
                format!("priority: {p}")
            }
            Command::Category(c, s) => format!("category: {c}/{s}"),
            Command::Type(tt) => format!("type: {tt}"),
            Command::Reject(reason) => {
                status = TicketStatus::Rejected;
                d.patch.closed_at = Some(Some(now));
                to_requester.push(("rejection", reason.clone()));
                format!("status: rejected ({reason})")
            }
            Command::Waive => {
                if status == TicketStatus::Pending && t.pending_reason == Some(PendingReason::Requirements) {
                    status = TicketStatus::Open;
                    d.patch.pending_reason = Some(None);
                    "requirements waived: the request goes on without them".to_string()
                } else {
                    "no requirements were waiting".to_string()
                }
            }
            Command::Close => {
                status = TicketStatus::Closed;
                d.patch.closed_at = Some(Some(now));
                d.patch.rating_requested_at = Some(now);
                to_requester.push(("closed_rating", String::new()));
                "status: closed".to_string()
            }
        };
        d.event(Actor::Sender, "command", json!({ "command": c.name(), "change": detail }), true);
        changes.push(detail);
    }
    if internal {
        d.event(Actor::Sender, "note", json!({ "text": text }), true);
    } else if !text.is_empty() && !to_requester.iter().any(|(tpl, _)| *tpl == "resolution") {
        to_requester.insert(0, ("agent_reply", text.clone()));
    }
    if status == TicketStatus::New {
        status = TicketStatus::Open;
    }
    d.patch.status = Some(status);
    d.patch.group_id = Some(group);
    d.patch.assignee = Some(assignee);
    d.patch.first_response_at = Some(now);
    if category != (t.category.clone(), t.subcategory.clone()) {
        d.patch.category = Some(category);
    }
    if ttype != t.ticket_type {
        d.patch.ticket_type = ttype;
    }
    for (template, body) in to_requester {
        d.sends.push(Send::Requester {
            template,
            text: body,
            missing: Vec::new(),
            refused_files: false,
            answering: false,
            personal: template == "agent_reply",
            record: true,
        });
    }
    for (a, event) in notify {
        d.sends.push(Send::Agent { address: a.address.to_string(), event, text: text.clone() });
    }
    if !reply.commands.is_empty() {
        d.sends.push(Send::Actor { template: "agent_confirmation", reason: String::new(), changes, unverified: false });
    }
    d
}

fn auto_close(t: &Ticket, desk: &Desk, now: i64) -> Decision {
    let mut d = Decision::append();
    if t.status != TicketStatus::Resolved {
        d.reason = Some(format!("not resolved ({}): nothing to close", t.status));
        return d;
    }
    d.patch.status = Some(TicketStatus::Closed);
    d.patch.closed_at = Some(Some(now));
    d.patch.rating_requested_at = Some(now);
    d.event(Actor::Loket, "closed", json!({ "by": "auto-close", "reopen_days": desk.reopen_days }), false);
    d.tell_requester("auto_closed", false);
    d
}

/// What a change from `before` to `after` at `now` does to the ticket's SLA clocks and timers.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ClockMoves {
    /// `Some(Some(at))`: auto-close at `at`; `Some(None)`: no longer.
    pub auto_close: Option<Option<i64>>,
    /// `Some(Some(at))`: remind the requester at `at`; `Some(None)`: no longer.
    pub remind: Option<Option<i64>>,
    /// The first response happened: the response clock stops.
    pub stop_response: bool,
    /// Waiting on the requester: every clock pauses.
    pub pause: bool,
    /// Back in the queue: paused clocks run again.
    pub resume: bool,
    /// Resolved: the resolution clock stops.
    pub stop_resolution: bool,
    /// Reopened: the resolution clock runs again.
    pub reopen_resolution: bool,
    /// Closed or rejected: every clock stops.
    pub stop_all: bool,
    /// Priority, type or category changed: the resolution target is computed again.
    pub retarget: bool,
}

/// Calendar days a ticket waits on its requester before the one reminder.
pub const REMIND_AFTER_DAYS: i64 = 2;

pub fn clock_moves(before: &Ticket, after: &Ticket, now: i64, reopen_days: u32) -> ClockMoves {
    use TicketStatus::{Pending, Resolved};
    let (b, a) = (before.status, after.status);
    let entered = |s: TicketStatus| a == s && b != s;
    let left = |s: TicketStatus| b == s && a != s;
    ClockMoves {
        auto_close: if entered(Resolved) {
            Some(Some(now + reopen_days as i64 * DAY_MS))
        } else if left(Resolved) {
            Some(None)
        } else {
            None
        },
        remind: if entered(Pending) {
            Some(Some(now + REMIND_AFTER_DAYS * DAY_MS))
        } else if left(Pending) {
            Some(None)
        } else {
            None
        },
        stop_response: before.first_response_at.is_none() && after.first_response_at.is_some(),
        pause: entered(Pending),
        resume: left(Pending) && a != Resolved && !a.is_finished(),
        stop_resolution: entered(Resolved),
        reopen_resolution: left(Resolved) && !a.is_finished(),
        stop_all: a.is_finished(),
        retarget: before.priority != after.priority
            || before.ticket_type != after.ticket_type
            || before.category != after.category
            || before.subcategory != after.subcategory,
    }
}
