//! Routing: which category, subcategory, ticket type and impact a new ticket gets. Pure.
//!
//! Until keyword rules land (`rules/<desk>.toml`), every new ticket goes to the desk's triage queue
//! (`triage/unknown`): nothing is forced into a wrong queue.

use serde::Serialize;

use crate::catalogue::{Catalogue, TRIAGE_CATEGORY, TRIAGE_SUBCATEGORY};
use crate::domain::{Impact, TicketType};

/// What the router decided, and why.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RouteDecision {
    pub category: String,
    pub subcategory: String,
    pub ticket_type: Option<TicketType>,
    pub impact: Option<Impact>,
    pub confidence: f64,
    pub reasons: Vec<String>,
}

impl RouteDecision {
    pub fn triage(reason: impl Into<String>) -> Self {
        Self {
            category: TRIAGE_CATEGORY.into(),
            subcategory: TRIAGE_SUBCATEGORY.into(),
            ticket_type: None,
            impact: None,
            confidence: 0.0,
            reasons: vec![reason.into()],
        }
    }
}

/// What the router looks at.
#[derive(Debug, Clone, Copy)]
pub struct RouteInput<'a> {
    pub subject: &'a str,
    pub body: &'a str,
    pub sender_domain: &'a str,
    pub inbox_address: &'a str,
}

/// Routes new tickets within one desk's catalogue.
pub fn route(_catalogue: &Catalogue, _input: &RouteInput<'_>) -> RouteDecision {
    RouteDecision::triage("no routing rules loaded: new tickets wait in triage")
}
