//! The public tracking page: `/lacak` (a form) and `/lacak/NUMBER` (status, category, public
//! timeline, deadlines). It shows nothing personal: no addresses, no names, no message bodies,
//! no agent identities. Indonesian by default, English with `?lang=en`. The words are in
//! `templates/<lang>/track_page.html.j2` (HTML-escaped); this module picks what is public and
//! passes it as a [`TrackPage`] of keys and [`When`] values.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};

use super::HttpState;
use crate::domain::Language;
use crate::sla::ClockKind;
use crate::store;
use crate::templates::{TrackDeadline, TrackEvent, TrackPage, When};

/// `?lang=en` asks for English; anything else is Indonesian.
fn lang(q: &HashMap<String, String>) -> Language {
    q.get("lang").and_then(|l| Language::parse(l)).unwrap_or_default()
}

/// The page for `view`, or a plain 500 when its template fails (checked at load, so only a
/// template changed on disk after start could).
fn page(s: &HttpState, lang: Language, code: StatusCode, view: &TrackPage) -> Response {
    match s.pipeline.templates().render_page(lang, "track_page.html", view) {
        Ok(html) => (code, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "tracking page: template failed");
            (StatusCode::INTERNAL_SERVER_ERROR, "template error").into_response()
        }
    }
}

/// The form again, with a notice (`invalid`, `not_found`, `too_many`).
fn form_with(s: &HttpState, lang: Language, code: StatusCode, notice: &str) -> Response {
    page(s, lang, code, &TrackPage { notice: notice.into(), ..Default::default() })
}

pub async fn form(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lang = lang(&q);
    if let Some(n) = q.get("nomor").map(|n| n.trim()).filter(|n| !n.is_empty()) {
        if !s.allow(peer.ip(), crate::now_ms()) {
            return too_many(&s, lang);
        }
        return match crate::ticket::TicketNumber::parse(n) {
            Some(n) => Redirect::to(&format!("/lacak/{}?lang={}", n.as_str(), lang.as_str())).into_response(),
            None => form_with(&s, lang, StatusCode::BAD_REQUEST, "invalid"),
        };
    }
    form_with(&s, lang, StatusCode::OK, "")
}

fn too_many(s: &HttpState, lang: Language) -> Response {
    let mut r = form_with(s, lang, StatusCode::TOO_MANY_REQUESTS, "too_many");
    r.headers_mut().insert(header::RETRY_AFTER, header::HeaderValue::from_static("60"));
    r
}

/// The public key of an event (see [`TrackEvent::what`]), or None when the event is internal.
pub(super) fn public_event(kind: &str, detail: &serde_json::Value) -> Option<&'static str> {
    Some(match kind {
        "created" => "created",
        "acknowledgement_queued" => "acknowledged",
        "message_received" => "requester_message",
        "sent_to_requester" => match detail["template"].as_str() {
            Some("agent_reply") => "staff_replied",
            Some("resolution") => "resolved",
            Some("rejection") => "rejected",
            Some("closed_rating") => "closed",
            _ => return None,
        },
        "command" => match detail["command"].as_str() {
            Some("assign") | Some("escalate") => "handled",
            Some("pending") => "waiting_requester",
            _ => return None,
        },
        "requirements_missing" => "waiting_requirements",
        "requirements_complete" => "requirements_complete",
        "reopened" => "reopened",
        "confirmed" => "confirmed",
        "closed" => "closed",
        "rated" => "rated",
        _ => return None,
    })
}

pub async fn ticket(
    State(s): State<HttpState>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(number): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let lang = lang(&q);
    if !s.allow(peer.ip(), crate::now_ms()) {
        return too_many(&s, lang);
    }
    let not_found = || form_with(&s, lang, StatusCode::NOT_FOUND, "not_found");
    let Some(number) = crate::ticket::TicketNumber::parse(&number) else { return not_found() };
    let tickets = match store::tickets_by_number(s.store.pool(), number.as_str()).await {
        Ok(t) => t,
        Err(_) => return (StatusCode::SERVICE_UNAVAILABLE, "store unavailable").into_response(),
    };
    let Some(t) = tickets.into_iter().next() else { return not_found() };
    let Some(desk) = s.config.desk(&t.desk) else { return not_found() };
    let events = store::ticket_events(s.store.pool(), t.id).await.unwrap_or_default();
    let clocks = store::sla::clocks_of(s.store.pool(), t.id).await.unwrap_or_default();
    // Without a known subcategory both names stay empty: the template says "triage".
    let (category_name, subcategory_name) = match desk.catalogue.subcategory(&t.category, &t.subcategory) {
        Some(sub) => {
            (desk.catalogue.category(&t.category).map(|c| c.name.clone()).unwrap_or_default(), sub.name.clone())
        }
        None => Default::default(),
    };
    let mut timeline: Vec<TrackEvent> = Vec::new();
    for e in &events {
        if let Some(what) = public_event(&e.kind, &e.detail) {
            if timeline.last().is_some_and(|l| l.what == what) {
                continue;
            }
            timeline.push(TrackEvent { at: When::at(e.at, desk.tz), what: what.into() });
        }
    }
    let deadlines = clocks
        .iter()
        .map(|c| {
            let k = &c.clock;
            let clock = match k.kind {
                ClockKind::Response => "response",
                ClockKind::Resolution => "resolution",
            };
            let (state, at) = match (k.due_at, k.stopped_at) {
                (_, Some(at)) => ("done", Some(at)),
                (Some(d), None) => ("due", Some(d)),
                (None, None) => ("paused", None),
            };
            TrackDeadline { clock: clock.into(), state: state.into(), at: at.map(|ms| When::at(ms, desk.tz)) }
        })
        .collect();
    let view = TrackPage {
        notice: String::new(),
        number: t.number.to_string(),
        status: t.status.as_str().into(),
        desk: desk.name.clone(),
        category_name,
        subcategory_name,
        events: timeline,
        deadlines,
    };
    page(&s, lang, StatusCode::OK, &view)
}
