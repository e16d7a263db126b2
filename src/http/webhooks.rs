//! Chat webhooks. WhatsApp: `GET /whatsapp/<desk>` answers Meta's verification handshake;
//! `POST /whatsapp/<desk>` is checked against `X-Hub-Signature-256` over the raw body before
//! anything is read (401, nothing stored, when it does not match). Telegram (webhook mode):
//! `POST /telegram/<desk>` must carry the configured `X-Telegram-Bot-Api-Secret-Token`.
//!
//! Status callbacks (sent, delivered, read, failed) in the same signed body are recorded against
//! the outbox row of the message they name (`Pipeline::chat_status`).
//!
//! A webhook is answered 200 once every message in it is committed (or was already); 500 when
//! the store is away, so the platform delivers it again; a replay changes nothing.

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};

use super::HttpState;
use crate::channel::whatsapp::{parse_notification, same_secret, signature_ok};

pub async fn whatsapp_verify(
    State(s): State<HttpState>,
    Path(desk): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> Response {
    let Some(w) = s.config.desk(&desk).and_then(|d| d.whatsapp.as_ref()) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let mode = q.get("hub.mode").map(String::as_str);
    let token = q.get("hub.verify_token").map(String::as_str).unwrap_or("");
    match (mode, q.get("hub.challenge")) {
        (Some("subscribe"), Some(challenge)) if same_secret(token, &w.verify_token.0) && challenge.len() <= 200 => {
            (StatusCode::OK, challenge.clone()).into_response()
        }
        _ => {
            tracing::warn!(desk, "whatsapp webhook verification refused: wrong verify token");
            StatusCode::FORBIDDEN.into_response()
        }
    }
}

pub async fn whatsapp(
    State(s): State<HttpState>,
    Path(desk): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (Some(w), Some(client)) = (s.config.desk(&desk).and_then(|d| d.whatsapp.as_ref()), s.chat.whatsapp.get(&desk))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let sig = headers.get("x-hub-signature-256").and_then(|v| v.to_str().ok());
    if !signature_ok(w.app_secret.0.as_bytes(), &body, sig) {
        tracing::warn!(desk, bytes = body.len(), "whatsapp webhook with a bad signature refused");
        return (StatusCode::UNAUTHORIZED, "bad signature").into_response();
    }
    let (messages, statuses) = match parse_notification(&body) {
        Ok(parsed) => parsed,
        Err(e) => {
            tracing::warn!(desk, error = %e, "whatsapp webhook body not understood");
            return (StatusCode::BAD_REQUEST, e.to_string()).into_response();
        }
    };
    for m in messages.iter().filter(|m| m.phone_number_id.is_empty() || m.phone_number_id == w.phone_number_id) {
        let chat = match client.to_chat(m).await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(desk, error = %e, "whatsapp media not fetched; asking for redelivery");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
        };
        match s.pipeline.chat(&desk, &chat, crate::now_ms()).await {
            Ok(_) => {}
            Err(e) if e.is_temporary() => {
                tracing::warn!(desk, error = %e, "whatsapp message not stored; asking for redelivery");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            Err(e) => {
                if s.pipeline.quarantine_chat(&desk, &chat, &e).await.is_err() {
                    return StatusCode::SERVICE_UNAVAILABLE.into_response();
                }
            }
        }
    }
    // Delivery status callbacks, from the same signed notification.
    for st in statuses.iter().filter(|st| st.phone_number_id.is_empty() || st.phone_number_id == w.phone_number_id) {
        match s.pipeline.chat_status(&desk, st, crate::now_ms()).await {
            Ok(_) => {}
            Err(e) if e.is_temporary() => {
                tracing::warn!(desk, error = %e, "whatsapp status not recorded; asking for redelivery");
                return StatusCode::SERVICE_UNAVAILABLE.into_response();
            }
            Err(e) => tracing::error!(desk, id = %st.id, error = %e, "whatsapp status cannot be recorded; dropped"),
        }
    }
    StatusCode::OK.into_response()
}

pub async fn telegram(
    State(s): State<HttpState>,
    Path(desk): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let (Some(t), Some(bot)) = (s.config.desk(&desk).and_then(|d| d.telegram.as_ref()), s.chat.telegram.get(&desk))
    else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let Some(secret) = t.webhook_secret.as_ref().filter(|_| t.mode == crate::config::TelegramMode::Webhook) else {
        return StatusCode::NOT_FOUND.into_response();
    };
    let given = headers.get("x-telegram-bot-api-secret-token").and_then(|v| v.to_str().ok()).unwrap_or("");
    if !same_secret(given, &secret.0) {
        tracing::warn!(desk, "telegram webhook with a wrong secret token refused");
        return (StatusCode::UNAUTHORIZED, "bad secret token").into_response();
    }
    let update: teloxide::types::Update = match serde_json::from_slice(&body) {
        Ok(u) => u,
        Err(e) => return (StatusCode::BAD_REQUEST, format!("not a Telegram update: {e}")).into_response(),
    };
    match bot.handle(&s.pipeline, &update).await {
        Ok(()) => StatusCode::OK.into_response(),
        Err(e) => {
            tracing::warn!(desk, error = %e, "telegram update not stored; asking for redelivery");
            StatusCode::SERVICE_UNAVAILABLE.into_response()
        }
    }
}
