//! What the seed documents ask of a new request beyond the catalogue's requirements (issue #17):
//! the required information it does not give, and for an event-dated service the event's date,
//! the deadline it sets and whether the request came in too late. The decision is pure (values
//! in, values out); the pipeline records it as events and passes it to the templates.

use serde_json::json;

use crate::routing::RouteDecision;
use crate::templates::{ScheduleCtx, When};
use crate::ticket::event_date;
use crate::ticket::reading::{self, InfoAsked};

/// What a new request is asked for and when it is due.
#[derive(Debug, Clone, Default)]
pub(crate) struct Asked {
    pub info: Vec<InfoAsked>,
    pub schedule: ScheduleCtx,
    /// The `event_scheduled` / `lead_time_short` event's detail.
    pub schedule_event: Option<serde_json::Value>,
    /// The resolution target when the event or a fulfilment tier sets it.
    pub resolution_target: Option<chrono::Duration>,
}

/// The decision itself: the desk, the route, the request's text and `now` in.
pub(crate) fn asks(desk: &crate::config::Desk, decision: &RouteDecision, text: &str, now: i64) -> Asked {
    let mut out = Asked::default();
    let Some(sub) = desk.catalogue.subcategory(&decision.category, &decision.subcategory) else { return out };
    out.info = reading::missing_info(sub, decision.ticket_type, text);
    let Some(sla) = &desk.sla else { return out };
    if decision.ticket_type != Some(crate::domain::TicketType::Incident)
        && !sub.tiers.is_empty()
        && let Some(f) = sub.fulfilment_for(text)
        && Some(f) != sub.fulfilment
    {
        out.resolution_target = Some(sla.resolution_target(decision.ticket_type, None, Some(f)));
    }
    let Some(schedule) = sub.schedule else { return out };
    if decision.ticket_type == Some(crate::domain::TicketType::Question) {
        return out;
    }
    let today = chrono::DateTime::from_timestamp_millis(now).unwrap_or_default().with_timezone(&desk.tz).date_naive();
    let Some(event) = event_date::find(text, today) else {
        out.schedule.ask_date = true;
        return out;
    };
    let due = schedule.close_after_days.map(|n| sla.event_due(event.date, n));
    let lead = sla.working.working_days_between(today, event.date);
    let event_ms = sla
        .working
        .start_of(event.date)
        .checked_add_signed(chrono::Duration::seconds(
            event.time.map(|t| chrono::Timelike::num_seconds_from_midnight(&t)).unwrap_or(0).into(),
        ))
        .unwrap_or_default()
        .timestamp_millis();
    if let Some(due) = due {
        out.resolution_target = sla.target_until(now, due);
    }
    out.schedule = ScheduleCtx {
        event: Some(When::at(event_ms, desk.tz)),
        event_time: event.time.is_some(),
        due: due.map(|d| When::at(d, desk.tz)),
        ask_date: false,
        short: lead < schedule.min_lead_days,
        lead_days: lead,
        min_lead_days: schedule.min_lead_days,
    };
    out.schedule_event = Some(json!({
        "event_date": event.date.to_string(),
        "due_at": due,
        "lead_days": lead,
        "min_lead_days": schedule.min_lead_days,
    }));
    out
}
