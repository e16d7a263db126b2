//! The ticket API under `/api/v1` (JSON; `docs/api/openapi.json` describes every operation):
//! open a ticket (through the pipeline, as mail: routing, acknowledgement, clocks), add a
//! message or an internal note, change status / assignee / category / type / priority (an
//! agent's reply judged by `ticket::decide`), read a ticket with its public timeline, list
//! tickets with filters and a cursor.
//!
//! Every call needs `Authorization: Bearer loket_<id>_<secret>` (401 without a live key); a key
//! sees only its desks' tickets (another desk's ticket is 404, as a number that does not exist),
//! writes only with the `write` scope (403), spends one request of its bucket (429 with
//! `Retry-After`), and leaves one `api_audit` row (key, operation, desk, ticket, status; never the
//! key or the body). Bodies are bounded ([`MAX_BODY_BYTES`]); every error is
//! `application/problem+json`.

pub mod bucket;
pub mod change;
pub mod key;
pub mod problem;
pub mod query;

use std::collections::HashMap;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use super::HttpState;
use crate::domain::EmailAddress;
use crate::pipeline::api::{Acted, ApiClient, ApiRequest};
use crate::pipeline::{Action, PipelineError};
use crate::store::{self, StoreError};
use crate::ticket::{Ticket, TicketNumber};
use key::Grant;
use problem::Problem;

/// Largest request body the API reads (a ticket's text is at most 16,000 characters).
pub const MAX_BODY_BYTES: usize = 64 * 1024;
/// Longest subject of a ticket opened through the API.
pub const MAX_SUBJECT_CHARS: usize = 300;

pub fn routes() -> Router<HttpState> {
    Router::new()
        .route("/api/v1/tickets", get(list).post(create))
        .route("/api/v1/tickets/{number}", get(show).patch(patch))
        .route("/api/v1/tickets/{number}/messages", axum::routing::post(message))
        .method_not_allowed_fallback(not_allowed)
        .route("/api/v1/{*rest}", axum::routing::any(no_route))
        .layer(axum::extract::DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// What one call did, for its audit row.
struct Call {
    operation: &'static str,
    desk: Option<String>,
    ticket: Option<String>,
}

impl Call {
    fn new(operation: &'static str) -> Self {
        Call { operation, desk: None, ticket: None }
    }
}

/// The key behind the call, checked and charged one request; or the problem to answer.
async fn admit(s: &HttpState, headers: &HeaderMap) -> Result<Grant, Response> {
    let given = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(key::bearer);
    let Some(presented) = given.and_then(key::parse) else {
        return Err(Problem::unauthorized("send `Authorization: Bearer <key>` with a key from `loket api-key create`")
            .into_response());
    };
    let grant = match store::api::live_api_key(s.store.pool(), presented.id).await {
        Ok(Some((grant, hash))) if key::matches(presented.secret, &hash) => grant,
        Ok(_) => {
            tracing::warn!(key = presented.id, "api call with an unknown, revoked or wrong key refused");
            return Err(Problem::unauthorized("the key is unknown or revoked").into_response());
        }
        Err(e) => return Err(store_problem(&e).into_response()),
    };
    if let Err(wait) = s.api_take(grant.id, crate::now_ms()) {
        audit(s, &grant, &Call::new("rate_limited"), StatusCode::TOO_MANY_REQUESTS).await;
        return Err(Problem::rate_limited(wait).into_response());
    }
    Ok(grant)
}

async fn audit(s: &HttpState, grant: &Grant, call: &Call, status: StatusCode) {
    let row = store::api::ApiAudit {
        key_id: grant.id,
        at: crate::now_ms(),
        operation: call.operation.to_string(),
        desk: call.desk.clone(),
        ticket: call.ticket.clone(),
        status: i64::from(status.as_u16()),
    };
    if let Err(e) = store::api::insert_api_audit(&s.store, &row).await {
        tracing::error!(key = grant.id, operation = call.operation, error = %e, "api audit row not written");
    }
}

/// Answers `result` and audits the call.
async fn finish(s: &HttpState, grant: &Grant, call: Call, result: Result<Response, Problem>) -> Response {
    let response = result.unwrap_or_else(IntoResponse::into_response);
    audit(s, grant, &call, response.status()).await;
    response
}

fn store_problem(e: &StoreError) -> Problem {
    tracing::error!(error = %e, "api: store error");
    if e.is_temporary() { Problem::unavailable("try again shortly") } else { Problem::internal("see the server's log") }
}

fn pipeline_problem(e: &PipelineError) -> Problem {
    tracing::error!(error = %e, "api: pipeline error");
    if e.is_temporary() { Problem::unavailable("try again shortly") } else { Problem::internal("see the server's log") }
}

fn body_problem(e: &BytesRejection) -> Problem {
    if e.status() == StatusCode::PAYLOAD_TOO_LARGE {
        Problem::too_large(format!("at most {MAX_BODY_BYTES} bytes"))
    } else {
        Problem::invalid(e.body_text())
    }
}

fn json_body<T: for<'de> Deserialize<'de>>(body: Result<Bytes, BytesRejection>) -> Result<T, Problem> {
    let bytes = body.map_err(|e| body_problem(&e))?;
    serde_json::from_slice(&bytes).map_err(|e| Problem::invalid(format!("body: {e}")))
}

fn ok_json(status: StatusCode, v: &impl Serialize) -> Response {
    (status, [(header::CONTENT_TYPE, "application/json")], serde_json::to_string(v).unwrap_or_default()).into_response()
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// A ticket as the API shows it.
fn view(t: &Ticket) -> Value {
    let at = |v: Option<i64>| v.map(rfc3339);
    json!({
        "number": t.number.as_str(),
        "desk": t.desk,
        "status": t.status,
        "category": t.category,
        "subcategory": t.subcategory,
        "type": t.ticket_type,
        "impact": t.impact,
        "priority": t.priority,
        "subject": t.subject,
        "requester": { "address": t.requester_address.as_str(), "name": t.requester_name },
        "assignee": t.assignee,
        "group": t.group_id,
        "language": t.language,
        "created_at": rfc3339(t.created_at),
        "updated_at": rfc3339(t.updated_at),
        "first_response_at": at(t.first_response_at),
        "resolved_at": at(t.resolved_at),
        "closed_at": at(t.closed_at),
        "rating": t.rating,
    })
}

/// The key's ticket `number`: None when no desk of the key has it (another desk's is the same).
async fn find(s: &HttpState, grant: &Grant, number: &str) -> Result<Option<Ticket>, Problem> {
    let Some(n) = TicketNumber::parse(number) else { return Ok(None) };
    let found = store::tickets_by_number(s.store.pool(), n.as_str()).await.map_err(|e| store_problem(&e))?;
    Ok(found.into_iter().find(|t| grant.sees(&t.desk)))
}

fn no_ticket(number: &str) -> Problem {
    Problem::not_found(format!("no ticket {number}"))
}

/// A method the path does not take (the `Allow` header names those it does).
async fn not_allowed() -> Problem {
    Problem::method_not_allowed("see docs/api/openapi.json for the operations of this path")
}

async fn no_route(State(s): State<HttpState>, headers: HeaderMap) -> Response {
    let grant = match admit(&s, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    finish(&s, &grant, Call::new("unknown"), Err(Problem::not_found("no such operation; see docs/api/openapi.json")))
        .await
}

/// `POST /api/v1/tickets`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct NewTicket {
    /// Required when the key has several desks.
    desk: Option<String>,
    requester: String,
    requester_name: Option<String>,
    subject: String,
    text: String,
}

async fn create(State(s): State<HttpState>, headers: HeaderMap, body: Result<Bytes, BytesRejection>) -> Response {
    let grant = match admit(&s, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut call = Call::new("create_ticket");
    let result = create_in(&s, &grant, &headers, body, &mut call).await;
    finish(&s, &grant, call, result).await
}

async fn create_in(
    s: &HttpState,
    grant: &Grant,
    headers: &HeaderMap,
    body: Result<Bytes, BytesRejection>,
    call: &mut Call,
) -> Result<Response, Problem> {
    if !grant.may_write() {
        return Err(Problem::forbidden("this key is read-only"));
    }
    let req: NewTicket = json_body(body)?;
    let desk = match (&req.desk, grant.desks.as_slice()) {
        (Some(d), _) if grant.sees(d) && s.config.desk(d).is_some() => d.clone(),
        (Some(d), _) => return Err(Problem::not_found(format!("no desk `{d}`"))),
        (None, [only]) => only.clone(),
        (None, _) => return Err(Problem::invalid("desk: required, the key has several desks")),
    };
    call.desk = Some(desk.clone());
    let requester = EmailAddress::parse(&req.requester).map_err(|e| Problem::invalid(format!("requester: {e}")))?;
    let subject = req.subject.trim();
    let text = req.text.trim();
    if subject.is_empty() || subject.chars().count() > MAX_SUBJECT_CHARS || subject.contains(['\r', '\n', '\0']) {
        return Err(Problem::invalid(format!("subject: one line of 1 to {MAX_SUBJECT_CHARS} characters")));
    }
    if text.is_empty() || text.chars().count() > change::MAX_TEXT_CHARS || text.contains('\0') {
        return Err(Problem::invalid(format!("text: 1 to {} characters", change::MAX_TEXT_CHARS)));
    }
    let name = req.requester_name.as_deref().map(str::trim).filter(|n| !n.is_empty());
    if name.is_some_and(|n| n.chars().count() > 200 || n.contains(['\r', '\n', '\0'])) {
        return Err(Problem::invalid("requester_name: one line of at most 200 characters"));
    }
    let idempotency_key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) if !k.trim().is_empty() && k.len() <= 200 => Some(k.trim().to_string()),
        Some(_) => return Err(Problem::invalid("Idempotency-Key: 1 to 200 visible characters")),
    };
    let api_req = ApiRequest {
        requester,
        name: name.map(str::to_string),
        subject: subject.to_string(),
        text: text.to_string(),
        idempotency_key,
    };
    let client = ApiClient { key_id: grant.id, name: &grant.name };
    let out =
        s.pipeline.api_create(&desk, &api_req, client, crate::now_ms()).await.map_err(|e| pipeline_problem(&e))?;
    let Some(number) = out.ticket else {
        return Err(Problem::held(out.reason.unwrap_or_else(|| "the request is held".into())));
    };
    call.ticket = Some(number.to_string());
    let t = find(s, grant, number.as_str()).await?.ok_or_else(|| no_ticket(number.as_str()))?;
    let status = if out.action == Action::Created { StatusCode::CREATED } else { StatusCode::OK };
    let mut r = ok_json(status, &view(&t));
    if let Ok(v) = header::HeaderValue::from_str(&format!("/api/v1/tickets/{}", number.as_str())) {
        r.headers_mut().insert(header::LOCATION, v);
    }
    Ok(r)
}

async fn list(State(s): State<HttpState>, headers: HeaderMap, Query(q): Query<HashMap<String, String>>) -> Response {
    let grant = match admit(&s, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut call = Call::new("list_tickets");
    call.desk = q.get("desk").cloned();
    let result = async {
        let f = query::parse_list(&q, &grant.desks).map_err(|e| match e {
            query::QueryError::UnknownDesk(d) => Problem::not_found(format!("no desk `{d}`")),
            query::QueryError::Invalid(why) => Problem::invalid(why),
        })?;
        let mut page = store::api::api_tickets(s.store.pool(), &f).await.map_err(|e| store_problem(&e))?;
        let more = page.len() > f.limit as usize;
        page.truncate(f.limit as usize);
        let next = if more { page.last().map(|t| query::cursor_of(t.id)) } else { None };
        let tickets: Vec<Value> = page.iter().map(view).collect();
        Ok::<_, Problem>(ok_json(StatusCode::OK, &json!({ "tickets": tickets, "next_cursor": next })))
    }
    .await;
    finish(&s, &grant, call, result).await
}

async fn show(State(s): State<HttpState>, headers: HeaderMap, Path(number): Path<String>) -> Response {
    let grant = match admit(&s, &headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut call = Call::new("get_ticket");
    let result = async {
        let t = find(&s, &grant, &number).await?.ok_or_else(|| no_ticket(&number))?;
        call.desk = Some(t.desk.clone());
        call.ticket = Some(t.number.to_string());
        let events = store::ticket_events(s.store.pool(), t.id).await.map_err(|e| store_problem(&e))?;
        let messages = store::ticket_messages(s.store.pool(), t.id).await.map_err(|e| store_problem(&e))?;
        let texts: HashMap<i64, (&str, &str)> =
            messages.iter().map(|m| (m.id, (m.direction.as_str(), m.body_text.as_str()))).collect();
        let mut timeline = Vec::new();
        for e in &events {
            let Some(what) = super::track::public_event(&e.kind, &e.detail) else { continue };
            let mut entry = json!({ "at": rfc3339(e.at), "event": what });
            if let Some((direction, text)) = e.detail["message"].as_i64().and_then(|row| texts.get(&row)) {
                entry["direction"] = json!(direction);
                entry["text"] = json!(text);
            }
            timeline.push(entry);
        }
        let mut v = view(&t);
        v["timeline"] = Value::Array(timeline);
        Ok::<_, Problem>(ok_json(StatusCode::OK, &v))
    }
    .await;
    finish(&s, &grant, call, result).await
}

async fn message(
    State(s): State<HttpState>,
    headers: HeaderMap,
    Path(number): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    write(&s, &headers, &number, body, "add_message", change::message, StatusCode::CREATED).await
}

async fn patch(
    State(s): State<HttpState>,
    headers: HeaderMap,
    Path(number): Path<String>,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    write(&s, &headers, &number, body, "change_ticket", change::change, StatusCode::OK).await
}

/// A write call (`op`): the key admitted, the body read as `B` and turned into an agent's reply
/// by `reply_of`, then applied to ticket `number` ([`act`]); audited either way.
async fn write<B: for<'de> Deserialize<'de>>(
    s: &HttpState,
    headers: &HeaderMap,
    number: &str,
    body: Result<Bytes, BytesRejection>,
    op: &'static str,
    reply_of: fn(&B) -> Result<crate::ticket::command::AgentReply, change::Invalid>,
    status: StatusCode,
) -> Response {
    let grant = match admit(s, headers).await {
        Ok(g) => g,
        Err(r) => return r,
    };
    let mut call = Call::new(op);
    let result = async {
        let body: B = json_body(body)?;
        let reply = reply_of(&body).map_err(|e| Problem::invalid(e.0))?;
        act(s, &grant, number, reply, &mut call, status).await
    }
    .await;
    finish(s, &grant, call, result).await
}

/// A reply on the key's ticket `number`, written as the key's client; the ticket as it is after.
async fn act(
    s: &HttpState,
    grant: &Grant,
    number: &str,
    reply: crate::ticket::command::AgentReply,
    call: &mut Call,
    status: StatusCode,
) -> Result<Response, Problem> {
    // Which desk the number is at is found before the scope is checked: a read key learns 403
    // only about tickets it may read anyway.
    let t = find(s, grant, number).await?.ok_or_else(|| no_ticket(number))?;
    call.desk = Some(t.desk.clone());
    call.ticket = Some(t.number.to_string());
    if !grant.may_write() {
        return Err(Problem::forbidden("this key is read-only"));
    }
    let client = ApiClient { key_id: grant.id, name: &grant.name };
    let acted = s
        .pipeline
        .api_reply(&t.desk, &t.number, reply, client, crate::now_ms())
        .await
        .map_err(|e| pipeline_problem(&e))?;
    match acted {
        Acted::NotFound => Err(no_ticket(number)),
        Acted::Refused(why) => Err(Problem::refused(why)),
        Acted::Done { changes } => {
            let t = find(s, grant, number).await?.ok_or_else(|| no_ticket(number))?;
            Ok(ok_json(status, &json!({ "ticket": view(&t), "changes": changes })))
        }
    }
}
