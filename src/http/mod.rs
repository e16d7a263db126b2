//! HTTP (axum): `/healthz` (store reachable; each inbox's last successful fetch and last error),
//! `/metrics` (Prometheus text), and the public ticket tracking page `/lacak` (HERO's "Lacak
//! Tiket": status, category, public timeline and deadlines — never addresses or message bodies),
//! rate-limited per client address against guessing numbers; the ticket API `/api/v1` (`api`).

pub mod api;
mod track;
mod webhooks;

use std::collections::HashMap;
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::channel::chat::ChatClients;
use crate::config::Config;
use crate::metrics::Metrics;
use crate::pipeline::Pipeline;
use crate::store::{self, Store};

/// Lookups one client address may make per minute on the tracking page.
pub const LOOKUPS_PER_MINUTE: u32 = 30;

#[derive(Clone)]
pub struct HttpState {
    pub store: Store,
    pub config: Arc<Config>,
    pub metrics: Arc<Metrics>,
    pub pipeline: Pipeline,
    pub chat: ChatClients,
    limiter: Arc<Mutex<HashMap<IpAddr, (i64, u32)>>>,
    /// The ticket API's token bucket per key id.
    api_buckets: Arc<Mutex<HashMap<i64, api::bucket::Bucket>>>,
}

impl HttpState {
    pub fn new(pipeline: Pipeline, chat: ChatClients) -> Self {
        Self {
            store: pipeline.store().clone(),
            config: pipeline.shared_config(),
            metrics: pipeline.metrics().clone(),
            pipeline,
            chat,
            limiter: Arc::default(),
            api_buckets: Arc::default(),
        }
    }

    /// Charges key `id` one API request at `now`: Ok, or Err with the seconds to wait.
    fn api_take(&self, id: i64, now: i64) -> Result<(), u64> {
        let budget = api::bucket::Budget {
            per_minute: self.config.limits.api_requests_per_minute,
            burst: self.config.limits.api_burst,
        };
        let mut g = self.api_buckets.lock().unwrap_or_else(|p| p.into_inner());
        g.entry(id).or_insert_with(|| api::bucket::Bucket::full(budget, now)).take(budget, now)
    }

    /// Fixed one-minute windows per client; the table is bounded.
    fn allow(&self, ip: IpAddr, now: i64) -> bool {
        let mut g = self.limiter.lock().unwrap_or_else(|p| p.into_inner());
        if g.len() > 10_000 {
            g.retain(|_, (start, _)| now - *start < 60_000);
        }
        let e = g.entry(ip).or_insert((now, 0));
        if now - e.0 >= 60_000 {
            *e = (now, 0);
        }
        e.1 += 1;
        e.1 <= LOOKUPS_PER_MINUTE
    }
}

pub fn router(state: HttpState) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/metrics", get(metrics))
        .route("/lacak", get(track::form))
        .route("/lacak/{number}", get(track::ticket))
        .route("/whatsapp/{desk}", get(webhooks::whatsapp_verify).post(webhooks::whatsapp))
        .route("/telegram/{desk}", axum::routing::post(webhooks::telegram))
        .merge(api::routes())
        .layer(axum::extract::DefaultBodyLimit::max(crate::channel::whatsapp::MAX_WEBHOOK_BYTES))
        .with_state(state)
}

/// Serves until `cancel` fires.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: HttpState,
    cancel: CancellationToken,
) -> std::io::Result<()> {
    axum::serve(listener, router(state).into_make_service_with_connect_info::<SocketAddr>())
        .with_graceful_shutdown(async move { cancel.cancelled().await })
        .await
}

async fn healthz(State(s): State<HttpState>) -> Response {
    let store_ok = s.store.is_reachable().await;
    let inboxes = s.metrics.inboxes();
    let healthy = store_ok && inboxes.values().all(|h| h.connected && h.deferred.is_none());
    let body = json!({
        "status": if healthy { "ok" } else { "unhealthy" },
        "store": if store_ok { "ok" } else { "unreachable" },
        "inboxes": inboxes,
    });
    let code = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (code, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

fn label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Seconds until each OAuth credential's access token and client secret expire (the secret's
/// end date comes from the configuration; refresh tokens carry no expiry the providers tell).
fn oauth_metrics(out: &mut String, now: i64) {
    let sources = crate::channel::oauth::all();
    if sources.is_empty() {
        return;
    }
    let labels = |o: &crate::oauth::config::OAuth| {
        format!("mailbox=\"{}\",client_id=\"{}\"", label(&o.user), label(&o.client_id))
    };
    let _ =
        writeln!(out, "# HELP loket_oauth_access_token_expiry_seconds Seconds until the cached access token expires.");
    let _ = writeln!(out, "# TYPE loket_oauth_access_token_expiry_seconds gauge");
    for src in &sources {
        if let Some(exp) = src.status().access_expires_ms {
            let _ = writeln!(
                out,
                "loket_oauth_access_token_expiry_seconds{{{}}} {}",
                labels(&src.oauth),
                (exp - now) / 1000
            );
        }
    }
    let _ = writeln!(
        out,
        "# HELP loket_oauth_client_secret_expiry_seconds Seconds until the client secret's configured end date."
    );
    let _ = writeln!(out, "# TYPE loket_oauth_client_secret_expiry_seconds gauge");
    for src in &sources {
        if let Some(day) = src.oauth.secret_expires {
            let left = crate::oauth::alert::secret_seconds_left(day, now);
            let _ = writeln!(out, "loket_oauth_client_secret_expiry_seconds{{{}}} {left}", labels(&src.oauth));
        }
    }
}

async fn metrics(State(s): State<HttpState>) -> Response {
    let mut out = String::new();
    let _ = writeln!(out, "# HELP loket_messages_total Inbound messages processed, by desk, inbox and action.");
    let _ = writeln!(out, "# TYPE loket_messages_total counter");
    for ((desk, inbox, action), n) in s.metrics.messages() {
        let _ = writeln!(
            out,
            "loket_messages_total{{desk=\"{}\",inbox=\"{}\",action=\"{}\"}} {n}",
            label(&desk),
            label(&inbox),
            label(&action)
        );
    }
    let _ = writeln!(out, "# HELP loket_flood_total Flood measures taken against one sender, by desk and measure.");
    let _ = writeln!(out, "# TYPE loket_flood_total counter");
    for ((desk, what), n) in s.metrics.floods() {
        let _ = writeln!(out, "loket_flood_total{{desk=\"{}\",measure=\"{}\"}} {n}", label(&desk), label(&what));
    }
    let _ = writeln!(
        out,
        "# HELP loket_chat_undelivered_total Chat messages the platform reported as not delivered, by error code."
    );
    let _ = writeln!(out, "# TYPE loket_chat_undelivered_total counter");
    for ((desk, channel, code), n) in s.metrics.undelivered() {
        let _ = writeln!(
            out,
            "loket_chat_undelivered_total{{desk=\"{}\",channel=\"{}\",code=\"{code}\"}} {n}",
            label(&desk),
            label(&channel)
        );
    }
    let (lag_sum, lag_count) = s.metrics.lag();
    let _ = writeln!(out, "# HELP loket_ingest_lag_seconds Time from a message's Date header to its processing.");
    let _ = writeln!(out, "# TYPE loket_ingest_lag_seconds summary");
    let _ = writeln!(out, "loket_ingest_lag_seconds_sum {lag_sum}");
    let _ = writeln!(out, "loket_ingest_lag_seconds_count {lag_count}");
    let _ = writeln!(out, "# HELP loket_inbox_up Whether the inbox's last fetch succeeded (1) or failed (0).");
    let _ = writeln!(out, "# TYPE loket_inbox_up gauge");
    for (name, h) in s.metrics.inboxes() {
        let _ = writeln!(
            out,
            "loket_inbox_up{{inbox=\"{}\",kind=\"{}\"}} {}",
            label(&name),
            label(&h.kind),
            h.connected as u8
        );
    }
    oauth_metrics(&mut out, crate::now_ms());
    let store_ok = match store::counts(s.store.pool()).await {
        Ok(c) => {
            let _ = writeln!(out, "# HELP loket_outbox_messages Outbound messages by delivery state.");
            let _ = writeln!(out, "# TYPE loket_outbox_messages gauge");
            for (state, n) in [("pending", c.outbox_pending), ("sent", c.outbox_sent), ("failed", c.outbox_failed)] {
                let _ = writeln!(out, "loket_outbox_messages{{state=\"{state}\"}} {n}");
            }
            let _ = writeln!(out, "# HELP loket_tickets Tickets in the store.");
            let _ = writeln!(out, "# TYPE loket_tickets gauge");
            let _ = writeln!(out, "loket_tickets {}", c.tickets);
            let _ = writeln!(out, "# HELP loket_quarantined Messages in quarantine.");
            let _ = writeln!(out, "# TYPE loket_quarantined gauge");
            let _ = writeln!(out, "loket_quarantined {}", c.quarantined);
            true
        }
        Err(_) => false,
    };
    if let Ok(failures) = store::outbox_failed_attempts(s.store.pool()).await {
        let _ = writeln!(out, "# HELP loket_outbox_failed_attempts_total Delivery attempts that failed.");
        let _ = writeln!(out, "# TYPE loket_outbox_failed_attempts_total counter");
        let _ = writeln!(out, "loket_outbox_failed_attempts_total {failures}");
    }
    if let Ok(rows) = store::webhook_counts(s.store.pool()).await {
        let _ =
            writeln!(out, "# HELP loket_webhooks Outbound webhook deliveries by desk and state (failed = given up).");
        let _ = writeln!(out, "# TYPE loket_webhooks gauge");
        for (desk, state, n) in rows {
            let _ = writeln!(out, "loket_webhooks{{desk=\"{}\",state=\"{}\"}} {n}", label(&desk), label(&state));
        }
    }
    if let Ok(rows) = store::sla::running_states(s.store.pool()).await {
        let _ = writeln!(out, "# HELP loket_sla_clocks Running SLA clocks by clock and state (warning = at risk).");
        let _ = writeln!(out, "# TYPE loket_sla_clocks gauge");
        for (kind, state, n) in rows {
            let _ = writeln!(out, "loket_sla_clocks{{clock=\"{}\",state=\"{}\"}} {n}", label(&kind), label(&state));
        }
    }
    let _ = writeln!(out, "# HELP loket_store_up Whether the store answered.");
    let _ = writeln!(out, "# TYPE loket_store_up gauge");
    let _ = writeln!(out, "loket_store_up {}", store_ok as u8);
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4; charset=utf-8")], out).into_response()
}
