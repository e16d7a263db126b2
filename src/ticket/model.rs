//! The ticket as a typed value: decoded once at the store boundary, changed only by a
//! [`TicketPatch`], which is what a decision returns and what the store writes in one statement.

use serde::Serialize;

use super::TicketNumber;
use crate::domain::{Channel, EmailAddress, Impact, Language, PendingReason, Priority, TicketStatus, TicketType};

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ticket {
    pub id: i64,
    pub desk: String,
    pub number: TicketNumber,
    pub category: String,
    pub subcategory: String,
    pub ticket_type: Option<TicketType>,
    pub impact: Option<Impact>,
    pub status: TicketStatus,
    pub channel: Channel,
    pub inbox: Option<String>,
    pub subject: String,
    /// Lower-cased; a chat requester's is `<platform>-<id>@chat.invalid`.
    pub requester_address: EmailAddress,
    pub requester_name: Option<String>,
    pub language: Language,
    pub created_at: i64,
    pub updated_at: i64,
    pub assignee: Option<String>,
    pub group_id: Option<String>,
    pub priority: Option<Priority>,
    pub pending_reason: Option<PendingReason>,
    pub resolved_at: Option<i64>,
    pub closed_at: Option<i64>,
    pub first_response_at: Option<i64>,
    pub linked_ticket_id: Option<i64>,
    pub rating: Option<u8>,
    pub rating_comment: Option<String>,
    pub rating_requested_at: Option<i64>,
}

impl Ticket {
    /// Closed or rejected: nothing more happens on it; a reply opens a linked ticket.
    pub fn is_finished(&self) -> bool {
        self.status.is_finished()
    }

    /// Waiting for documents the catalogue requires.
    pub fn awaits_requirements(&self) -> bool {
        self.status == TicketStatus::Pending && self.pending_reason == Some(PendingReason::Requirements)
    }
}

/// A change of a ticket's fields. `None` leaves a field as it is; `Some(None)` clears it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TicketPatch {
    pub status: Option<TicketStatus>,
    pub pending_reason: Option<Option<PendingReason>>,
    pub assignee: Option<Option<String>>,
    pub group_id: Option<Option<String>>,
    pub priority: Option<Priority>,
    pub category: Option<(String, String)>,
    pub ticket_type: Option<TicketType>,
    pub impact: Option<Option<Impact>>,
    pub resolved_at: Option<Option<i64>>,
    pub closed_at: Option<Option<i64>>,
    /// Set once, by the first agent reply or action.
    pub first_response_at: Option<i64>,
    pub rating: Option<(u8, String)>,
    pub rating_requested_at: Option<i64>,
}

impl TicketPatch {
    pub fn is_empty(&self) -> bool {
        *self == TicketPatch::default()
    }

    /// The ticket after this patch at `now`, exactly as the store will hold it.
    pub fn apply(&self, t: &Ticket, now: i64) -> Ticket {
        let mut t = t.clone();
        if let Some(v) = self.status {
            t.status = v;
        }
        if let Some(v) = self.pending_reason {
            t.pending_reason = v;
        }
        if let Some(v) = &self.assignee {
            t.assignee = v.clone();
        }
        if let Some(v) = &self.group_id {
            t.group_id = v.clone();
        }
        if let Some(v) = self.priority {
            t.priority = Some(v);
        }
        if let Some((c, s)) = &self.category {
            (t.category, t.subcategory) = (c.clone(), s.clone());
        }
        if let Some(v) = self.ticket_type {
            t.ticket_type = Some(v);
        }
        if let Some(v) = self.impact {
            t.impact = v;
        }
        if let Some(v) = self.resolved_at {
            t.resolved_at = v;
        }
        if let Some(v) = self.closed_at {
            t.closed_at = v;
        }
        if let Some(v) = self.first_response_at {
            t.first_response_at = t.first_response_at.or(Some(v));
        }
        if let Some((r, c)) = &self.rating {
            (t.rating, t.rating_comment) = (Some(*r), Some(c.clone()));
        }
        if let Some(v) = self.rating_requested_at {
            t.rating_requested_at = Some(v);
        }
        t.updated_at = now;
        t
    }
}
