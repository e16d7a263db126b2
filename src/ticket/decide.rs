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
use super::reading::parse_rating;
use super::{Ticket, TicketNumber, TicketPatch};
use crate::catalogue::Missing;
use crate::config::{Agent, Desk};
use crate::domain::{EmailAddress, PendingReason, TicketStatus};
use crate::sla::{ClockKind, SlaState};

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
    /// Only the words: read them (an answer to a resolution notice, a rating).
    Text,
    Confirm,
    Reopen,
    /// A rating given by a chat command or button (the words are its comment).
    Rate(u8, String),
}

/// One way a ticket is touched.
#[derive(Debug, Clone)]
pub enum Intent<'a> {
    /// The requester wrote. `text` is the part written now; `said` what a button or command said
    /// besides it; `missing` what the catalogue still requires, judged by the caller when the
    /// ticket waits on requirements; `refused_files` whether attachments were refused by the
    /// desk's policy; `inbox` where it arrived.
    Requester { text: &'a str, said: Said, missing: &'a [Missing], refused_files: bool, inbox: &'a str },
    /// Someone the desk admitted from the request's To/Cc wrote.
    Participant { text: &'a str, inbox: &'a str },
    /// A desk agent replied through the ticket's thread: `reply` is the reply's text and
    /// commands, or why it cannot be read as a verified agent reply (no valid token, a bad
    /// command line). `target`: the ticket a `#merge` names, when the desk has one by that
    /// number (loaded by the caller; another desk's numbers are never found).
    Agent { agent: &'a Agent, reply: Result<AgentReply, String>, target: Option<&'a Ticket> },
    /// Machine-written mail that threads to the ticket (an auto-reply, bulk mail, a delivery
    /// report): kept on the ticket, never answered. `kind` is the loop guard's verdict.
    Automatic { kind: &'a str, inbox: &'a str, bounce: Option<&'a BounceFacts> },
    /// The scheduler: the reopen window of a resolved ticket passed.
    AutoClose,
    /// The scheduler: a pending ticket waited long enough for one reminder to its requester.
    Remind,
    /// The scheduler: a clock of the ticket reached a threshold (`to`: warning or breach).
    ClockDue { clock: ClockKind, to: SlaState, due_at: Option<i64> },
}

/// What a delivery report says about the mail it returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BounceFacts {
    pub subject: String,
    pub failed_recipients: Vec<String>,
    pub status: Option<String>,
    pub diagnostic: Option<String>,
    pub hard: bool,
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

/// A message to the requester with `template`; `text` fills the template's text and reason.
/// `answering`: threaded under the message being handled. `personal`: an agent's words (not an
/// automatic reply). `record`: an event of that kind cites the queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToRequester {
    pub template: &'static str,
    pub text: String,
    pub missing: Vec<Missing>,
    pub refused_files: bool,
    pub answering: bool,
    pub personal: bool,
    pub record: Option<&'static str>,
    /// Copied to the ticket's participants too (agents' replies, the resolution notice).
    pub copy_participants: bool,
    /// Another ticket the message names (the merge notice: the surviving ticket).
    pub linked: Option<TicketNumber>,
}

impl ToRequester {
    /// `template` and nothing else: no text, not threaded, automatic, not recorded.
    pub fn new(template: &'static str) -> Self {
        ToRequester {
            template,
            text: String::new(),
            missing: Vec::new(),
            refused_files: false,
            answering: false,
            personal: false,
            record: None,
            copy_participants: false,
            linked: None,
        }
    }
}

/// A change of the ticket's participants (`#cc`, `#uncc`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParticipantChange {
    Add(EmailAddress),
    Remove(EmailAddress),
}

/// This ticket is merged into `into` (another open ticket of the same requester): its
/// conversation moves there, replies to either number thread there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeInto {
    pub id: i64,
    pub number: TicketNumber,
}

/// A message to send, rendered from the ticket as it is after the patch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Send {
    Requester(ToRequester),
    /// To the ticket's agents (the assignee, else the group, else layer 1), limited per sender.
    Agents {
        event: &'static str,
        text: String,
    },
    /// To one agent (assigned, escalated).
    Agent {
        address: EmailAddress,
        event: &'static str,
        text: String,
    },
    /// An SLA alert (`event`: `response_warning`, `resolution_breached`, …) to one agent, with
    /// the clock's deadline.
    Alert {
        address: EmailAddress,
        event: String,
        due_at: Option<i64>,
    },
    /// Back to the agent who wrote: what changed, or why nothing did. `unverified`: answered as
    /// an automatic reply under the agent's message, without a token.
    Actor {
        template: &'static str,
        reason: String,
        changes: Vec<String>,
        unverified: bool,
    },
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
    /// Participants added or removed, applied with the patch.
    pub participants: Vec<ParticipantChange>,
    /// Merged into another ticket: applied after the messages are queued.
    pub merge: Option<MergeInto>,
}

impl Decision {
    fn append() -> Self {
        Decision {
            flow: Flow::Append,
            events: Vec::new(),
            patch: TicketPatch::default(),
            sends: Vec::new(),
            reason: None,
            participants: Vec::new(),
            merge: None,
        }
    }

    fn follow_up(reason: String) -> Self {
        Decision { flow: Flow::FollowUp { reason }, ..Decision::append() }
    }

    fn event(&mut self, actor: Actor, kind: &'static str, detail: Value, cites_message: bool) {
        self.events.push(Event { actor, kind, detail, cites_message });
    }

    fn tell_requester(&mut self, template: &'static str, answering: bool) {
        self.sends.push(Send::Requester(ToRequester { answering, ..ToRequester::new(template) }));
    }
}

/// What `intent` does to ticket `t` of `desk` at `now`.
pub fn decide(t: &Ticket, intent: &Intent<'_>, desk: &Desk, now: i64) -> Decision {
    let d = match intent {
        Intent::Requester { text, said, missing, refused_files, inbox } => {
            requester(t, text, said, missing, *refused_files, inbox, desk, now)
        }
        Intent::Participant { text, inbox } => participant(t, text, inbox),
        Intent::Agent { agent, reply, target } => match reply {
            Ok(reply) => agent_reply(t, agent, reply, *target, desk, now),
            Err(reason) => refusal(reason.clone(), true),
        },
        Intent::Automatic { kind, inbox, bounce } => automatic(kind, inbox, *bounce),
        Intent::AutoClose => auto_close(t, desk, now),
        Intent::Remind => remind(t),
        Intent::ClockDue { clock, to, due_at } => clock_due(t, desk, *clock, *to, *due_at),
    };
    debug_assert!(d.patch.status.is_none_or(|s| may_move(t.status, s)), "{:?} → {:?}", t.status, d.patch.status);
    d
}

#[allow(clippy::too_many_arguments)]
fn requester(
    t: &Ticket,
    text: &str,
    said: &Said,
    missing: &[Missing],
    refused_files: bool,
    inbox: &str,
    desk: &Desk,
    now: i64,
) -> Decision {
    let rating = match said {
        Said::Rate(r, c) => Some((*r, c.clone())),
        Said::Text => parse_rating(text),
        Said::Confirm | Said::Reopen => None,
    };
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
    if t.status == TicketStatus::Closed
        && t.rating.is_some()
        && t.closed_at.is_some_and(|c| now - c <= desk.reopen_days as i64 * DAY_MS)
        && let Some((rating, comment)) = rating
    {
        // A second rating soon after the first corrects it ("5, maaf salah ketik").
        let mut d = Decision::append();
        let detail = json!({ "rating": rating, "comment": comment, "was": t.rating });
        d.event(Actor::Sender, "rating_changed", detail, true);
        d.patch.rating = Some((rating, comment));
        d.tell_requester("rating_thanks", true);
        d.reason = Some("rating corrected".into());
        return d;
    }
    if t.is_finished() || late {
        let why = if late { "reopen window passed" } else { "ticket closed" };
        return Decision::follow_up(format!("follow-up of {} ({why})", t.number));
    }
    let mut d = Decision::append();
    if refused_files {
        d.sends.push(Send::Requester(ToRequester {
            refused_files: true,
            answering: true,
            ..ToRequester::new("attachments_refused")
        }));
    }
    match t.status {
        TicketStatus::Resolved => {
            let answer = match said {
                Said::Confirm => Answer::Confirm,
                Said::Reopen => Answer::Reopen,
                Said::Text | Said::Rate(..) => read_answer(text),
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
                d.sends.push(Send::Requester(ToRequester {
                    missing: missing.to_vec(),
                    answering: true,
                    ..ToRequester::new("incomplete")
                }));
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

/// Notices to the requester that carry the agent's words with them.
const CARRIES_WORDS: &[&str] = &["resolution", "closed_by_desk", "requirements_waived"];

/// What the ticket's participants get a copy of: the agents' words and the resolution.
const COPIED: &[&str] = &["agent_reply", "resolution"];

/// Why `#merge number` cannot merge ticket `t` into `target` (the desk's ticket of that number).
fn merge_problem(t: &Ticket, number: &TicketNumber, target: Option<&Ticket>, reply: &AgentReply) -> Option<String> {
    let Some(into) = target.filter(|x| x.number == *number) else {
        return Some("no such ticket at this desk".into());
    };
    if into.id == t.id {
        Some("a ticket cannot be merged into itself".into())
    } else if into.requester_address != t.requester_address {
        Some("it belongs to another requester; only tickets of the same requester are merged".into())
    } else if t.is_finished() {
        Some(format!("{} is {}", t.number, t.status))
    } else if into.is_finished() {
        Some(format!("{number} is {}; merge into an open ticket", into.status))
    } else if reply.commands.iter().filter(|c| matches!(c, Command::Merge(_))).count() > 1 {
        Some("one merge per reply".into())
    } else if reply.commands.iter().any(|c| status_of(c).is_some()) {
        Some("a merge closes this ticket: no status command beside it".into())
    } else {
        None
    }
}

fn agent_reply(
    t: &Ticket,
    agent: &Agent,
    reply: &AgentReply,
    target: Option<&Ticket>,
    desk: &Desk,
    now: i64,
) -> Decision {
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
            Command::Cc(a) if *a == t.requester_address => {
                problems.push(format!("#cc {a}: the requester gets every message already"));
            }
            Command::Cc(a) if desk.is_own_address(a) || desk.agent(a).is_some() => {
                problems.push(format!("#cc {a}: the desk's own address or an agent cannot be a participant"));
            }
            Command::Requester(..) => problems.push(
                "#requester: only on a new mail to the desk (not a reply), to open a ticket for someone else".into(),
            ),
            Command::Merge(n) => {
                if let Some(p) = merge_problem(t, n, target, reply) {
                    problems.push(format!("#merge {n}: {p}"));
                }
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
    // A hand-over (`#assign`, `#escalate`) without a status change speaks to the colleagues it
    // names, not to the requester: its words are an internal note, sent with the notification.
    let assigned_by_hand = reply.commands.iter().any(|c| matches!(c, Command::Assign(_) | Command::Escalate));
    let hands_over = assigned_by_hand && !reply.commands.iter().any(|c| status_of(c).is_some());
    let internal = reply.has("note") || hands_over;
    // The words for the requester: carried by the notice of what changed when there is one
    // (resolution, closing, waiver), else sent as the agent's reply.
    let words = if internal { String::new() } else { text.clone() };
    let mut status = t.status;
    let mut group = t.group_id.clone();
    let mut assignee = t.assignee.clone();
    let mut merged: Option<TicketNumber> = None;
    for c in &reply.commands {
        let detail = match c {
            Command::Resolve => {
                status = TicketStatus::Resolved;
                d.patch.resolved_at = Some(Some(now));
                d.patch.pending_reason = Some(None);
                // The requester is always asked to confirm (the auto-close runs from now); an
                // internal note's words stay with the agents.
                to_requester.push(("resolution", words.clone()));
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
                    to_requester.push(("requirements_waived", words.clone()));
                    "requirements waived: the request goes on without them".to_string()
                } else {
                    "no requirements were waiting".to_string()
                }
            }
            Command::Close => {
                status = TicketStatus::Closed;
                d.patch.closed_at = Some(Some(now));
                d.patch.rating_requested_at = Some(now);
                to_requester.push(("closed_by_desk", words.clone()));
                "status: closed".to_string()
            }
            Command::Cc(a) => {
                d.participants.push(ParticipantChange::Add(a.clone()));
                format!("participant added: {a}")
            }
            Command::Uncc(a) => {
                d.participants.push(ParticipantChange::Remove(a.clone()));
                format!("participant removed: {a}")
            }
            Command::Merge(n) => {
                // Checked above: the target is another open ticket of the same requester. This
                // one closes as merged (no rating asked); the requester is told once.
                let into = target.expect("checked above");
                status = TicketStatus::Closed;
                d.patch.closed_at = Some(Some(now));
                d.merge = Some(MergeInto { id: into.id, number: into.number.clone() });
                d.event(Actor::Loket, "merged", json!({ "into": n.as_str() }), false);
                merged = Some(n.clone());
                format!("merged into {n}")
            }
            Command::Requester(..) => unreachable!("refused above"),
        };
        d.event(Actor::Sender, "command", json!({ "command": c.name(), "change": detail }), true);
        changes.push(detail);
    }
    if internal {
        if !text.is_empty() || reply.has("note") {
            d.event(Actor::Sender, "note", json!({ "text": text }), true);
        }
    } else if !text.is_empty() && !to_requester.iter().any(|(tpl, _)| CARRIES_WORDS.contains(tpl)) {
        to_requester.insert(0, ("agent_reply", text.clone()));
    }
    if status == TicketStatus::New {
        status = TicketStatus::Open;
    }
    // A new route brings its own team, unless the reply chose one: a ticket moved out of triage
    // (or between services) goes to the group that serves its new subcategory.
    if category != (t.category.clone(), t.subcategory.clone())
        && !assigned_by_hand
        && let Some(g) = desk.group_for(&category.0, &category.1)
        && group.as_deref() != Some(g.id.as_str())
    {
        group = Some(g.id.clone());
        assignee = None;
        notify.extend(desk.members(&g.id).into_iter().filter(|a| a.address != agent.address).map(|a| (a, "assigned")));
        changes.push(format!("assigned to group {} (the new category's team)", g.id));
        d.event(Actor::Loket, "assigned", json!({ "group": g.id, "by": "new category" }), false);
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
        d.sends.push(Send::Requester(ToRequester {
            text: body,
            personal: template == "agent_reply",
            record: Some("sent_to_requester"),
            copy_participants: COPIED.contains(&template),
            ..ToRequester::new(template)
        }));
    }
    if let Some(into) = merged {
        d.sends.push(Send::Requester(ToRequester {
            linked: Some(into),
            record: Some("sent_to_requester"),
            ..ToRequester::new("merged")
        }));
    }
    for (a, event) in notify {
        d.sends.push(Send::Agent { address: a.address.clone(), event, text: text.clone() });
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

fn automatic(kind: &str, inbox: &str, bounce: Option<&BounceFacts>) -> Decision {
    let mut d = Decision::append();
    match bounce {
        Some(b) => d.event(
            Actor::Sender,
            "bounce_received",
            json!({ "subject": b.subject, "failed_recipients": b.failed_recipients, "status": b.status,
                    "diagnostic": b.diagnostic, "hard": b.hard }),
            true,
        ),
        None => d.event(Actor::Sender, "message_received", json!({ "kind": kind, "inbox": inbox }), true),
    }
    d
}

fn remind(t: &Ticket) -> Decision {
    let mut d = Decision::append();
    if t.status != TicketStatus::Pending {
        d.reason = Some(format!("not pending ({}): no reminder", t.status));
        return d;
    }
    d.sends.push(Send::Requester(ToRequester {
        record: Some("pending_reminder"),
        ..ToRequester::new("pending_reminder")
    }));
    d
}

/// Who hears of a ticket: its assignee, else its group (else layer 1), else the supervisors.
pub fn notify_targets<'d>(t: &Ticket, desk: &'d Desk) -> Vec<&'d Agent> {
    if let Some(a) = t.assignee.as_deref().and_then(|a| EmailAddress::parse(a).ok()).and_then(|a| desk.agent(&a)) {
        return vec![a];
    }
    let group = t.group_id.as_deref().or_else(|| desk.layer1().map(|g| g.id.as_str()));
    let members = group.map(|g| desk.members(g)).unwrap_or_default();
    if members.is_empty() { desk.supervisors() } else { members }
}

/// A warning goes to the ticket's agents; a breach also to the supervisors.
fn clock_due(t: &Ticket, desk: &Desk, clock: ClockKind, to: SlaState, due_at: Option<i64>) -> Decision {
    let mut d = Decision::append();
    let mut targets = notify_targets(t, desk);
    if to == SlaState::Breached {
        for s in desk.supervisors() {
            if !targets.iter().any(|a| a.address == s.address) {
                targets.push(s);
            }
        }
    }
    let event = format!("{}_{}", clock.as_str(), to.as_str());
    for a in &targets {
        d.sends.push(Send::Alert { address: a.address.clone(), event: event.clone(), due_at });
    }
    let notified: Vec<&str> = targets.iter().map(|a| a.address.as_str()).collect();
    let kind = if to == SlaState::Breached { "sla_breached" } else { "sla_warning" };
    d.event(Actor::Loket, kind, json!({ "clock": clock.as_str(), "due_at": due_at, "notified": notified }), false);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Config;
    use crate::domain::{Channel, Language, TicketType};
    use crate::ticket::TicketNumber;
    use crate::ticket::command;

    const NOW: i64 = 1_767_578_400_000; // Monday 2026-01-05 09:00 WIB
    const HOUR: i64 = 3_600_000;

    /// The example configuration's HERO desk with a layer-1 agent, a layer-2 group and a supervisor.
    fn config() -> Config {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(root.join("loket.toml")).unwrap();
        let people: toml::Table = toml::from_str(
            "[[group]]\nid = \"l1\"\nname = \"Service Desk\"\nlayer = 1\n\
             [[group]]\nid = \"apps\"\nname = \"Tim Aplikasi\"\nlayer = 2\nroutes = [\"aplikasi/*\"]\n\
             [[agent]]\naddress = \"agus@kemendag.go.id\"\nname = \"Agus\"\ngroups = [\"l1\"]\n\
             [[agent]]\naddress = \"sari@kemendag.go.id\"\nname = \"Sari\"\ngroups = [\"apps\"]\n\
             [[agent]]\naddress = \"kepala@kemendag.go.id\"\nname = \"Pak Kepala\"\nsupervisor = true\n",
        )
        .unwrap();
        // The shipped HERO desk's groups are replaced by these people (as the conversation suite does).
        let mut doc: toml::Table = toml::from_str(&text).unwrap();
        let hero = doc["desk"].as_array_mut().unwrap()[0].as_table_mut().unwrap();
        hero.extend(people);
        doc.insert("security".into(), toml::Value::Table(toml::toml! { token_secret_env = "TEST_SECRET" }));
        let text = toml::to_string(&doc).unwrap();
        let env = |k: &str| (k == "TEST_SECRET").then(|| "a test secret of enough bytes".to_string());
        Config::from_toml(&root.join("loket.toml"), &text, env).unwrap()
    }

    fn ticket(status: TicketStatus) -> Ticket {
        Ticket {
            id: 1,
            desk: "hero".into(),
            number: TicketNumber::parse("A-HERO26000001").unwrap(),
            category: "aplikasi".into(),
            subcategory: "sigi".into(),
            ticket_type: Some(TicketType::Incident),
            impact: None,
            status,
            channel: Channel::Email,
            inbox: Some("hero".into()),
            subject: "SIGI error".into(),
            requester_address: EmailAddress::parse("budi@example.test").unwrap(),
            requester_name: None,
            language: Language::Id,
            created_at: NOW - 48 * HOUR,
            updated_at: NOW - HOUR,
            assignee: None,
            group_id: Some("l1".into()),
            priority: None,
            pending_reason: (status == TicketStatus::Pending).then_some(PendingReason::Requester),
            resolved_at: (status == TicketStatus::Resolved).then_some(NOW - HOUR),
            closed_at: status.is_finished().then_some(NOW - HOUR),
            first_response_at: None,
            linked_ticket_id: None,
            rating: None,
            rating_comment: None,
            rating_requested_at: (status == TicketStatus::Closed).then_some(NOW - HOUR),
        }
    }

    fn says(text: &str) -> Intent<'_> {
        Intent::Requester { text, said: Said::Text, missing: &[], refused_files: false, inbox: "hero" }
    }

    fn agent_says<'a>(agent: &'a Agent, text: &str) -> Intent<'a> {
        Intent::Agent { agent, reply: command::parse(text).map_err(|e| e.to_string()), target: None }
    }

    fn agent_merges<'a>(agent: &'a Agent, text: &str, target: &'a Ticket) -> Intent<'a> {
        Intent::Agent { agent, reply: command::parse(text).map_err(|e| e.to_string()), target: Some(target) }
    }

    #[test]
    fn participants_get_replies_and_the_resolution_and_agents_name_them() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        let agus = desk.find_agent("agus").unwrap();
        let t = ticket(TicketStatus::Open);
        let copied = |d: &Decision| -> Vec<&'static str> {
            d.sends
                .iter()
                .filter_map(|s| match s {
                    Send::Requester(r) if r.copy_participants => Some(r.template),
                    _ => None,
                })
                .collect()
        };
        assert_eq!(copied(&decide(&t, &agent_says(agus, "Sudah kami cek."), desk, NOW)), ["agent_reply"]);
        assert_eq!(copied(&decide(&t, &agent_says(agus, "#resolve Sudah normal."), desk, NOW)), ["resolution"]);
        assert!(copied(&decide(&t, &agent_says(agus, "#note internal"), desk, NOW)).is_empty());
        assert!(copied(&decide(&t, &agent_says(agus, "#reject bukan layanan kami"), desk, NOW)).is_empty());

        let ani = EmailAddress::parse("ani@example.test").unwrap();
        let d = decide(&t, &agent_says(agus, "#cc ani@example.test\n#uncc old@example.test"), desk, NOW);
        assert_eq!(
            d.participants,
            [ParticipantChange::Add(ani), ParticipantChange::Remove(EmailAddress::parse("old@example.test").unwrap())]
        );
        assert_eq!(templates(&d), ["agent_confirmation"], "nothing goes to the requester");
        for bad in ["#cc budi@example.test", "#cc sari@kemendag.go.id", "#requester x@example.test"] {
            let d = decide(&t, &agent_says(agus, bad), desk, NOW);
            assert!(d.patch.is_empty() && d.participants.is_empty(), "{bad}");
            assert_eq!(kinds(&d), ["agent_reply_refused"], "{bad}");
        }
    }

    #[test]
    fn a_merge_needs_another_open_ticket_of_the_same_requester() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        let agus = desk.find_agent("agus").unwrap();
        let t = ticket(TicketStatus::Open);
        let mut other = ticket(TicketStatus::New);
        other.id = 2;
        other.number = TicketNumber::parse("A-HERO26000002").unwrap();
        let d = decide(&t, &agent_merges(agus, "#merge A-HERO26000002", &other), desk, NOW);
        assert_eq!((d.patch.status, d.patch.closed_at), (Some(TicketStatus::Closed), Some(Some(NOW))));
        assert_eq!(d.patch.rating_requested_at, None, "a merged ticket asks for no rating");
        assert_eq!(d.merge, Some(MergeInto { id: 2, number: other.number.clone() }));
        assert_eq!(templates(&d), ["merged", "agent_confirmation"]);
        assert!(matches!(&d.sends[0], Send::Requester(ToRequester { linked: Some(n), .. }) if *n == other.number));

        let refused = |intent: &Intent<'_>, why: &str| {
            let d = decide(&t, intent, desk, NOW);
            assert!(d.patch.is_empty() && d.merge.is_none(), "{why}");
            assert!(d.reason.as_deref().is_some_and(|r| r.contains(why)), "{why}: {:?}", d.reason);
        };
        refused(&agent_says(agus, "#merge A-HERO26000002"), "no such ticket");
        refused(&agent_merges(agus, "#merge A-HERO26000009", &other), "no such ticket");
        refused(&agent_merges(agus, "#merge A-HERO26000001", &t), "into itself");
        let mut strangers = other.clone();
        strangers.requester_address = EmailAddress::parse("mallory@example.test").unwrap();
        refused(&agent_merges(agus, "#merge A-HERO26000002", &strangers), "another requester");
        let mut closed = other.clone();
        closed.status = TicketStatus::Closed;
        refused(&agent_merges(agus, "#merge A-HERO26000002", &closed), "merge into an open ticket");
        refused(&agent_merges(agus, "#merge A-HERO26000002\n#resolve", &other), "no status command");
        let d = decide(&ticket(TicketStatus::Closed), &agent_merges(agus, "#merge A-HERO26000002", &other), desk, NOW);
        assert!(d.merge.is_none() && d.patch.is_empty());
    }

    fn templates(d: &Decision) -> Vec<&'static str> {
        d.sends
            .iter()
            .map(|s| match s {
                Send::Requester(ToRequester { template, .. }) | Send::Actor { template, .. } => *template,
                Send::Agents { event, .. } | Send::Agent { event, .. } => *event,
                Send::Alert { .. } => "sla_alert",
            })
            .collect()
    }

    fn kinds(d: &Decision) -> Vec<&'static str> {
        d.events.iter().map(|e| e.kind).collect()
    }

    #[test]
    fn every_decision_stays_in_the_transition_table() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        let agus = desk.find_agent("agus").unwrap();
        let rated = Intent::Requester {
            text: "5 cepat",
            said: Said::Rate(5, "cepat".into()),
            missing: &[],
            refused_files: false,
            inbox: "hero",
        };
        let button = |said| Intent::Requester { text: "", said, missing: &[], refused_files: false, inbox: "hero" };
        let mut open_other = ticket(TicketStatus::Open);
        open_other.id = 2;
        open_other.number = TicketNumber::parse("A-HERO26000002").unwrap();
        let mut intents = vec![
            agent_merges(agus, "#merge A-HERO26000002", &open_other),
            says("Ya, sudah jelas"),
            says("Belum, masih error"),
            says("hmm"),
            rated,
            button(Said::Confirm),
            button(Said::Reopen),
            Intent::Participant { text: "Mohon dipercepat", inbox: "hero" },
            Intent::Agent { agent: agus, reply: Err("no token".into()), target: None },
            Intent::AutoClose,
        ];
        let commands = [
            "Sudah kami perbaiki.",
            "#resolve Sudah normal",
            "#pending Mohon tangkapan layar",
            "#close",
            "#reject bukan layanan kami",
            "#waive",
            "#assign sari",
            "#assign apps",
            "#escalate",
            "#priority P2",
            "#note cek server",
            "#resolve\n#close",
            "#cc ani@example.test\nSudah kami cek.",
            "#uncc ani@example.test",
            "#merge A-HERO26000002",
        ];
        intents.extend(commands.iter().map(|c| agent_says(agus, c)));
        for from in TicketStatus::ALL {
            for (late, resolved_at) in [(false, NOW - HOUR), (true, NOW - 30 * 24 * HOUR)] {
                let mut t = ticket(*from);
                if t.status == TicketStatus::Resolved {
                    t.resolved_at = Some(resolved_at);
                } else if late {
                    continue;
                }
                for intent in &intents {
                    let d = decide(&t, intent, desk, NOW);
                    if let Some(to) = d.patch.status {
                        assert!(may_move(t.status, to), "{from:?} → {to:?} on {intent:?}");
                    }
                    if matches!(d.flow, Flow::FollowUp { .. }) {
                        assert!(d.patch.is_empty() && d.events.is_empty() && d.sends.is_empty(), "{intent:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn the_requester_answers_a_resolution() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        let t = ticket(TicketStatus::Resolved);
        let yes = decide(&t, &says("Ya, sudah jelas. Terima kasih"), desk, NOW);
        assert_eq!(yes.patch.status, Some(TicketStatus::Closed));
        assert_eq!((yes.patch.closed_at, yes.patch.rating_requested_at), (Some(Some(NOW)), Some(NOW)));
        assert_eq!(kinds(&yes), ["confirmed", "closed"]);
        assert_eq!(templates(&yes), ["closed_rating"]);

        let no = decide(&t, &says("Belum, masih tidak bisa login"), desk, NOW);
        assert_eq!((no.patch.status, no.patch.resolved_at), (Some(TicketStatus::Open), Some(None)));
        assert_eq!(templates(&no), ["reopened", "reopened"], "the requester is told and the agents hear it");

        let unclear = decide(&t, &says("kapan ya bisa dicek?"), desk, NOW);
        assert!(unclear.patch.is_empty(), "an unclear answer is never guessed");
        assert_eq!(templates(&unclear), ["confirm_question"]);

        let mut late = t.clone();
        late.resolved_at = Some(NOW - (desk.reopen_days as i64 + 1) * 24 * HOUR);
        let d = decide(&late, &says("Belum, masih error"), desk, NOW);
        assert!(matches!(d.flow, Flow::FollowUp { ref reason } if reason.contains("reopen window passed")), "{d:?}");
    }

    #[test]
    fn a_closed_ticket_takes_one_rating_and_nothing_else() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        let t = ticket(TicketStatus::Closed);
        let rating = Intent::Requester {
            text: "4 cukup cepat",
            said: Said::Rate(4, "cukup cepat".into()),
            missing: &[],
            refused_files: false,
            inbox: "hero",
        };
        let d = decide(&t, &rating, desk, NOW);
        assert_eq!(d.patch.rating, Some((4, "cukup cepat".into())));
        assert_eq!(d.patch.status, None);
        assert_eq!(templates(&d), ["rating_thanks"]);
        let mut rated = t.clone();
        rated.rating = Some(4);
        let d = decide(&rated, &rating, desk, NOW);
        assert_eq!((kinds(&d), d.patch.rating.clone()), (vec!["rating_changed"], Some((4, "cukup cepat".into()))));
        rated.closed_at = Some(NOW - (desk.reopen_days as i64 + 1) * 24 * HOUR);
        assert!(matches!(decide(&rated, &rating, desk, NOW).flow, Flow::FollowUp { .. }), "corrected only soon after");
        assert!(matches!(decide(&t, &says("Ada masalah baru"), desk, NOW).flow, Flow::FollowUp { .. }));
    }

    #[test]
    fn requirements_hold_a_request_until_they_arrive() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        let mut t = ticket(TicketStatus::Pending);
        t.pending_reason = Some(PendingReason::Requirements);
        let missing = [Missing { kind: crate::catalogue::RequirementKind::Attachment, item: "Surat resmi".into() }];
        let still = Intent::Requester {
            text: "Ini datanya",
            said: Said::Text,
            missing: &missing,
            refused_files: false,
            inbox: "hero",
        };
        let d = decide(&t, &still, desk, NOW);
        assert!(d.patch.is_empty());
        assert!(
            matches!(&d.sends[..], [Send::Requester(ToRequester { template: "incomplete", missing: m, .. })] if m[..] == missing)
        );
        let d = decide(&t, &says("Terlampir surat resminya"), desk, NOW);
        assert_eq!((d.patch.status, d.patch.pending_reason), (Some(TicketStatus::Open), Some(None)));
        assert_eq!(kinds(&d), ["requirements_complete"]);
        assert_eq!(templates(&d), ["requirements"]);
    }

    #[test]
    fn participants_are_heard_but_change_nothing() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        for status in TicketStatus::ALL {
            let t = ticket(*status);
            let d = decide(&t, &Intent::Participant { text: "Ya, sudah jelas", inbox: "hero" }, desk, NOW);
            assert!(d.patch.is_empty(), "{status:?}");
            if t.is_finished() {
                assert!(matches!(d.flow, Flow::FollowUp { .. }));
            } else {
                assert_eq!(templates(&d), ["participant"]);
            }
        }
    }

    #[test]
    fn agents_work_the_ticket() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        let agus = desk.find_agent("agus").unwrap();
        let t = ticket(TicketStatus::New);

        let d = decide(&t, &agent_says(agus, "Sedang kami cek."), desk, NOW);
        assert_eq!((d.patch.status, d.patch.first_response_at), (Some(TicketStatus::Open), Some(NOW)));
        assert!(matches!(
            &d.sends[..],
            [Send::Requester(ToRequester {
                template: "agent_reply",
                personal: true,
                record: Some("sent_to_requester"),
                ..
            })]
        ));

        let d = decide(&t, &agent_says(agus, "#resolve Sudah normal kembali"), desk, NOW);
        assert_eq!((d.patch.status, d.patch.resolved_at), (Some(TicketStatus::Resolved), Some(Some(NOW))));
        assert_eq!(templates(&d), ["resolution", "agent_confirmation"]);

        let d = decide(&t, &agent_says(agus, "#assign sari\nTolong dicek"), desk, NOW);
        assert_eq!(d.patch.assignee, Some(Some("sari@kemendag.go.id".into())));
        assert!(d.sends.iter().any(
            |s| matches!(s, Send::Agent { address, event: "assigned", .. } if address.as_str() == "sari@kemendag.go.id")
        ));

        let d = decide(&t, &agent_says(agus, "#assign nobody\n#resolve"), desk, NOW);
        assert!(d.patch.is_empty(), "one bad command changes nothing");
        assert!(matches!(&d.sends[..], [Send::Actor { template: "agent_refused", unverified: false, .. }]));

        let d =
            decide(&t, &Intent::Agent { agent: agus, reply: Err("no valid token".into()), target: None }, desk, NOW);
        assert!(d.patch.is_empty());
        assert!(matches!(&d.sends[..], [Send::Actor { template: "agent_refused", unverified: true, .. }]));
        assert_eq!(kinds(&d), ["agent_reply_refused"]);

        // A hand-over's words go to the colleague, never to the requester.
        let d = decide(&t, &agent_says(agus, "#assign sari\nTolong dicek switch lantai 3."), desk, NOW);
        assert_eq!(templates(&d), ["assigned", "agent_confirmation"]);
        assert!(kinds(&d).contains(&"note"));
        // An internal note on a resolution keeps its words, but the requester is still asked.
        let d = decide(&t, &agent_says(agus, "#resolve\n#note restart manual"), desk, NOW);
        assert!(
            matches!(&d.sends[0], Send::Requester(ToRequester { template: "resolution", text, .. }) if text.is_empty())
        );
        // Closing by the desk is not thanked as a confirmation.
        assert_eq!(
            templates(&decide(&t, &agent_says(agus, "#close"), desk, NOW)),
            ["closed_by_desk", "agent_confirmation"]
        );
        // Waived requirements are news to the requester.
        let mut held = ticket(TicketStatus::Pending);
        held.pending_reason = Some(PendingReason::Requirements);
        assert_eq!(
            templates(&decide(&held, &agent_says(agus, "#waive"), desk, NOW)),
            ["requirements_waived", "agent_confirmation"]
        );

        // Out of triage to a service with its own team: the team takes it.
        let mut triage = ticket(TicketStatus::New);
        (triage.category, triage.subcategory) = (crate::catalogue::TRIAGE_CATEGORY.into(), "unknown".into());
        let d = decide(&triage, &agent_says(agus, "#category aplikasi/sigi"), desk, NOW);
        assert_eq!(d.patch.group_id, Some(Some("apps".into())));
        assert!(
            d.sends
                .iter()
                .any(|s| matches!(s, Send::Agent { address, .. } if address.as_str() == "sari@kemendag.go.id"))
        );
        let d = decide(&triage, &agent_says(agus, "#category aplikasi/sigi\n#assign agus"), desk, NOW);
        assert_eq!(d.patch.group_id, Some(Some("l1".into())), "the reply chose the team");

        let closed = ticket(TicketStatus::Closed);
        let d = decide(&closed, &agent_says(agus, "#resolve"), desk, NOW);
        assert!(d.patch.is_empty(), "a closed ticket stays closed");
        assert!(d.reason.unwrap().contains("is closed"));
    }

    #[test]
    fn auto_close_closes_only_resolved_tickets() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        let d = decide(&ticket(TicketStatus::Resolved), &Intent::AutoClose, desk, NOW);
        assert_eq!(d.patch.status, Some(TicketStatus::Closed));
        assert_eq!(templates(&d), ["auto_closed"]);
        for s in [TicketStatus::Open, TicketStatus::Pending, TicketStatus::Closed] {
            assert!(decide(&ticket(s), &Intent::AutoClose, desk, NOW).patch.is_empty(), "{s:?}");
        }
    }

    #[test]
    fn the_scheduler_reminds_and_alerts() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        let d = decide(&ticket(TicketStatus::Pending), &Intent::Remind, desk, NOW);
        assert!(matches!(
            &d.sends[..],
            [Send::Requester(ToRequester { template: "pending_reminder", record: Some("pending_reminder"), .. })]
        ));
        assert!(decide(&ticket(TicketStatus::Open), &Intent::Remind, desk, NOW).sends.is_empty(), "only while pending");

        let t = ticket(TicketStatus::Open); // group l1: Agus
        let due = Some(NOW);
        let warn = Intent::ClockDue { clock: ClockKind::Response, to: SlaState::Warning, due_at: due };
        let d = decide(&t, &warn, desk, NOW);
        let to = |d: &Decision| -> Vec<String> {
            d.sends
                .iter()
                .filter_map(|s| if let Send::Alert { address, .. } = s { Some(address.to_string()) } else { None })
                .collect()
        };
        assert_eq!(to(&d), ["agus@kemendag.go.id"]);
        assert_eq!(kinds(&d), ["sla_warning"]);
        let breach = Intent::ClockDue { clock: ClockKind::Resolution, to: SlaState::Breached, due_at: due };
        let d = decide(&t, &breach, desk, NOW);
        assert_eq!(to(&d), ["agus@kemendag.go.id", "kepala@kemendag.go.id"], "a breach reaches the supervisors");
        assert!(matches!(&d.sends[0], Send::Alert { event, .. } if event == "resolution_breached"));
        assert!(d.patch.is_empty());
    }

    #[test]
    fn automatic_mail_is_kept_and_never_answered() {
        let cfg = config();
        let desk = cfg.desk("hero").unwrap();
        let b = BounceFacts { failed_recipients: vec!["budi@example.test".into()], hard: true, ..Default::default() };
        for status in TicketStatus::ALL {
            let t = ticket(*status);
            for bounce in [None, Some(&b)] {
                let d = decide(&t, &Intent::Automatic { kind: "auto_reply", inbox: "hero", bounce }, desk, NOW);
                assert!(d.patch.is_empty() && d.sends.is_empty() && d.flow == Flow::Append, "{status:?}");
                assert_eq!(kinds(&d), [if bounce.is_some() { "bounce_received" } else { "message_received" }]);
            }
        }
    }

    #[test]
    fn clocks_follow_the_status() {
        let open = ticket(TicketStatus::Open);
        let patch = |s| TicketPatch { status: Some(s), ..Default::default() };
        let resolved = patch(TicketStatus::Resolved).apply(&open, NOW);
        let m = clock_moves(&open, &resolved, NOW, 7);
        assert_eq!(m.auto_close, Some(Some(NOW + 7 * DAY_MS)));
        assert!(m.stop_resolution && !m.stop_all && !m.pause);
        let m = clock_moves(&resolved, &open, NOW, 7);
        assert_eq!(m.auto_close, Some(None));
        assert!(m.reopen_resolution);
        let pending = patch(TicketStatus::Pending).apply(&open, NOW);
        let m = clock_moves(&open, &pending, NOW, 7);
        assert_eq!((m.pause, m.remind), (true, Some(Some(NOW + REMIND_AFTER_DAYS * DAY_MS))));
        let m = clock_moves(&pending, &open, NOW, 7);
        assert_eq!((m.resume, m.remind), (true, Some(None)));
        let closed = patch(TicketStatus::Closed).apply(&pending, NOW);
        let m = clock_moves(&pending, &closed, NOW, 7);
        assert!(m.stop_all && !m.resume);
        let answered = TicketPatch { first_response_at: Some(NOW), ..Default::default() }.apply(&open, NOW);
        assert!(clock_moves(&open, &answered, NOW, 7).stop_response);
        let p2 = TicketPatch { priority: Some(crate::domain::Priority::P2), ..Default::default() }.apply(&open, NOW);
        assert!(clock_moves(&open, &p2, NOW, 7).retarget);
        assert_eq!(clock_moves(&open, &open, NOW, 7), ClockMoves::default());
    }

    /// The decisions are pure: no store, no channel, no HTTP, no runtime, no clock of their own.
    #[test]
    fn the_decisions_do_no_io() {
        for (name, source) in [
            ("ticket/decide.rs", include_str!("decide.rs")),
            ("ticket/thread.rs", include_str!("thread.rs")),
            ("ticket/model.rs", include_str!("model.rs")),
            ("ticket/reading.rs", include_str!("reading.rs")),
        ] {
            for line in source.lines().map(str::trim) {
                for banned in
                    ["crate::store", "crate::channel", "crate::http", "crate::pipeline", "tokio", "sqlx", "reqwest"]
                {
                    assert!(!(line.starts_with("use ") && line.contains(banned)), "{name}: `{line}`");
                }
                for clock in ["SystemTime::now", "Utc::now", "Local::now", "Instant::now"] {
                    assert!(!line.contains(&format!("{clock}()")), "{name} reads the clock: `{line}`");
                }
            }
        }
    }
}
