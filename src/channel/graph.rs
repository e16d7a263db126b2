//! Microsoft Graph mail, for Microsoft 365 tenants that switch IMAP off: an inbox read by delta
//! queries (`[desk.inbox.graph]`) and a transport that sends through `sendMail`
//! (`outbound.transport = "graph"`), both with the app's bearer token (`channel::oauth`).
//!
//! Intake keeps invariant 1 as IMAP does: a message is moved to the processed folder only after
//! the pipeline committed it, so a crash in between leaves it in the folder, where the next full
//! delta finds it again and the pipeline's idempotency key makes it a duplicate. The delta link
//! is kept only after a round in which every message was committed and moved; any failure
//! starts the next round from a full delta of what is still in the folder.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use super::ChannelError;
use super::oauth::{OAuthError, TokenSource};
use crate::config::{Desk, GraphConfig, InboxConfig};
use crate::pipeline::{Incoming, Pipeline};

/// Graph's base URL.
pub const DEFAULT_ENDPOINT: &str = "https://graph.microsoft.com";
/// Header bytes kept of a message too large to fetch whole (as the Maildir path keeps).
const HEADER_BYTES: usize = 256 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum GraphError {
    #[error("OAuth token: {0}")]
    Token(#[from] OAuthError),
    #[error("Graph unreachable: {0}")]
    Http(String),
    #[error("Graph answered {status}: {message}")]
    Status { status: u16, message: String },
}

impl GraphError {
    /// Waiting may help: the network, throttling (429), Graph's own trouble (5xx), a token that
    /// expired under us (401, fetched anew next time); not a refused permission or a bad id.
    pub fn is_temporary(&self) -> bool {
        match self {
            GraphError::Token(t) => t.is_temporary(),
            GraphError::Http(_) => true,
            GraphError::Status { status, .. } => matches!(status, 401 | 408 | 429) || *status >= 500,
        }
    }
}

impl From<GraphError> for ChannelError {
    fn from(e: GraphError) -> Self {
        if e.is_temporary() { ChannelError::temporary(e.to_string()) } else { ChannelError::permanent(e.to_string()) }
    }
}

/// Graph's mail endpoints for one mailbox's app, over one HTTP client.
pub struct GraphClient {
    http: reqwest::Client,
    base: String,
    source: Arc<TokenSource>,
}

/// The most of a JSON answer read (a delta page of 50 ids is a few KB) and of an error body.
const MAX_JSON_BYTES: usize = 4 * 1024 * 1024;
const MAX_ERROR_BYTES: usize = 64 * 1024;

/// The body of `resp`, refused past `max` bytes.
async fn bounded(resp: reqwest::Response, max: usize) -> Result<Vec<u8>, GraphError> {
    super::read_bounded(resp, max).await.map_err(GraphError::Http)
}

async fn json_of(resp: reqwest::Response) -> Result<Value, GraphError> {
    let body = bounded(resp, MAX_JSON_BYTES).await?;
    serde_json::from_slice(&body).map_err(|e| GraphError::Http(format!("not JSON: {e}")))
}

impl GraphClient {
    pub fn new(endpoint: Option<&str>, source: Arc<TokenSource>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(60))
            .build()
            .unwrap_or_else(|_| reqwest::Client::new());
        let base = endpoint.unwrap_or(DEFAULT_ENDPOINT).trim_end_matches('/').to_string();
        GraphClient { http, base, source }
    }

    fn url(&self, user: &str, rest: &str) -> String {
        let user: String = user.chars().filter(|c| !matches!(c, '/' | '?' | '#')).collect();
        format!("{}/v1.0/users/{user}/{rest}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<reqwest::Response, GraphError> {
        let token = self.source.access_token().await?;
        let resp = req.bearer_auth(&token.0).send().await.map_err(|e| GraphError::Http(e.to_string()))?;
        let status = resp.status().as_u16();
        if resp.status().is_success() {
            return Ok(resp);
        }
        if status == 401 {
            self.source.invalidate();
        }
        // Graph's error body: {"error": {"code": "...", "message": "..."}}.
        let body: Value =
            bounded(resp, MAX_ERROR_BYTES).await.ok().and_then(|b| serde_json::from_slice(&b).ok()).unwrap_or_default();
        let e = &body["error"];
        let message = format!("{}: {}", e["code"].as_str().unwrap_or("?"), e["message"].as_str().unwrap_or(""));
        Err(GraphError::Status { status, message })
    }

    async fn json(&self, req: reqwest::RequestBuilder) -> Result<Value, GraphError> {
        json_of(self.send(req).await?).await
    }

    /// The ids of the messages in `folder` that are new since `link` (all of them without one),
    /// following every page, and the delta link for next time.
    pub async fn delta(
        &self,
        user: &str,
        folder: &str,
        link: Option<&str>,
    ) -> Result<(Vec<String>, String), GraphError> {
        let mut url = match link {
            Some(l) => l.to_string(),
            None => self.url(user, &format!("mailFolders/{folder}/messages/delta?$select=id")),
        };
        let mut ids = Vec::new();
        for _ in 0..10_000 {
            let page = self.json(self.http.get(&url).header("Prefer", "odata.maxpagesize=50")).await?;
            for item in page["value"].as_array().into_iter().flatten() {
                if item.get("@removed").is_none()
                    && let Some(id) = item["id"].as_str()
                {
                    ids.push(id.to_string());
                }
            }
            if let Some(next) = page["@odata.nextLink"].as_str() {
                url = next.to_string();
            } else if let Some(delta) = page["@odata.deltaLink"].as_str() {
                return Ok((ids, delta.to_string()));
            } else {
                break;
            }
        }
        Err(GraphError::Http("delta query ended without a delta link".into()))
    }

    /// The message's MIME, at most `max` bytes (`Err(len)` past it, with the first bytes).
    pub async fn mime(&self, user: &str, id: &str, max: usize) -> Result<Result<Vec<u8>, Vec<u8>>, GraphError> {
        let mut resp = self.send(self.http.get(self.url(user, &format!("messages/{id}/$value")))).await?;
        let mut raw = Vec::new();
        while let Some(chunk) = resp.chunk().await.map_err(|e| GraphError::Http(e.to_string()))? {
            raw.extend_from_slice(&chunk);
            if raw.len() > max {
                raw.truncate(HEADER_BYTES.min(max));
                return Ok(Err(raw));
            }
        }
        Ok(Ok(raw))
    }

    /// The id of the folder named `name` at the mailbox's top, created when missing.
    pub async fn folder_id(&self, user: &str, name: &str) -> Result<String, GraphError> {
        let quoted = name.replace('\'', "''");
        for _ in 0..2 {
            let found = self
                .json(
                    self.http
                        .get(self.url(user, "mailFolders"))
                        .query(&[("$filter", format!("displayName eq '{quoted}'"))]),
                )
                .await?;
            if let Some(id) = found["value"][0]["id"].as_str() {
                return Ok(id.to_string());
            }
            let made = self
                .send(self.http.post(self.url(user, "mailFolders")).json(&serde_json::json!({"displayName": name})));
            match made.await {
                Ok(r) => {
                    let v = json_of(r).await?;
                    if let Some(id) = v["id"].as_str() {
                        return Ok(id.to_string());
                    }
                }
                // Another instance made it first: look again.
                Err(GraphError::Status { status: 409, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Err(GraphError::Http(format!("folder `{name}` could neither be found nor made")))
    }

    /// Moves a message into the folder `folder_id` (its id changes, as Graph does on a move).
    pub async fn move_to(&self, user: &str, id: &str, folder_id: &str) -> Result<(), GraphError> {
        let body = serde_json::json!({"destinationId": folder_id});
        self.send(self.http.post(self.url(user, &format!("messages/{id}/move"))).json(&body)).await.map(|_| ())
    }

    /// Sends `raw` as it is (MIME, base64) from mailbox `from`: Graph sends it to the message's
    /// own To and Cc and keeps a copy in Sent Items.
    pub async fn send_mime(&self, from: &str, raw: &[u8]) -> Result<(), GraphError> {
        let body = base64::engine::general_purpose::STANDARD.encode(raw);
        let req = self.http.post(self.url(from, "sendMail")).header("Content-Type", "text/plain").body(body);
        self.send(req).await.map(|_| ())
    }
}

/// One Graph inbox: delta rounds while this instance holds the inbox's lease.
#[derive(Clone)]
pub struct GraphSource {
    pub pipeline: Pipeline,
    pub lease: super::lease::Lease,
    pub desk: Desk,
    pub inbox: InboxConfig,
    pub cfg: GraphConfig,
    pub user: String,
    pub client: Arc<GraphClient>,
    /// The delta link of the last clean round, and the processed folder's id.
    state: Arc<Mutex<(Option<String>, Option<String>)>>,
}

/// The Graph source of `inbox`, its token from the store's shared source for the app.
pub fn source(
    pipeline: Pipeline,
    desk: &Desk,
    inbox: &InboxConfig,
    cfg: &GraphConfig,
    holder: &str,
) -> Result<GraphSource, String> {
    let user = cfg.mailbox(&inbox.address).to_string();
    let env = |k: &str| std::env::var(k).ok();
    let oauth =
        cfg.oauth(&inbox.address, &env).map_err(|e| format!("inbox {}: graph: {}", inbox.name, e.join("; ")))?;
    let store = pipeline.store().clone();
    let client = Arc::new(GraphClient::new(cfg.endpoint.as_deref(), super::oauth::shared(&oauth, &store)));
    Ok(GraphSource {
        lease: super::lease::Lease { store, inbox: inbox.name.clone(), holder: holder.to_string() },
        pipeline,
        desk: desk.clone(),
        inbox: inbox.clone(),
        cfg: cfg.clone(),
        user,
        client,
        state: Arc::default(),
    })
}

impl GraphSource {
    /// Runs until `cancel` fires: a round every `poll_interval_secs`, backing off (doubling to
    /// 60 s) after errors.
    pub async fn run(self, cancel: CancellationToken) {
        let poll = Duration::from_secs(self.cfg.poll_interval_secs.max(1));
        super::lease::poll_rounds(&self.lease, &self.pipeline, "Graph", poll, None, &cancel, || self.round(&cancel))
            .await;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, (Option<String>, Option<String>)> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// One delta round: every new message processed in batches, each moved to the processed
    /// folder after its batch committed. Returns how many were done.
    pub async fn round(&self, cancel: &CancellationToken) -> Result<usize, ChannelError> {
        let (link, processed) = self.state().clone();
        let processed = match processed {
            Some(id) => id,
            None => {
                let id = self.client.folder_id(&self.user, &self.cfg.processed_folder).await?;
                self.state().1 = Some(id.clone());
                id
            }
        };
        let (ids, next) = self.client.delta(&self.user, &self.cfg.folder, link.as_deref()).await?;
        let config = self.pipeline.config();
        let (max, batch) = (config.limits.max_message_bytes, config.limits.batch_messages.max(1));
        let mut done = 0;
        let mut clean = true;
        for chunk in ids.chunks(batch) {
            if cancel.is_cancelled() {
                return Ok(done);
            }
            let now = crate::now_ms();
            let mut ready = Vec::with_capacity(chunk.len());
            for id in chunk {
                match self.client.mime(&self.user, id, max).await? {
                    Ok(raw) => ready.push((id, raw)),
                    Err(header) => {
                        let reason = format!(
                            "message larger than limits.max_message_bytes ({max}); the original stays in the \
                             mailbox's `{}` folder",
                            self.cfg.processed_folder
                        );
                        self.pipeline.quarantine(&self.desk, &self.inbox, &header, max + 1, &reason, now).await?;
                        self.client.move_to(&self.user, id, &processed).await?;
                        done += 1;
                    }
                }
            }
            let incoming: Vec<Incoming<'_>> = ready.iter().map(|(_, raw)| Incoming { raw, now }).collect();
            let results = self.pipeline.process_batch(&self.inbox.name, &incoming).await;
            for ((id, _), result) in ready.iter().zip(results) {
                match result {
                    Ok(_) => {
                        self.client.move_to(&self.user, id, &processed).await?;
                        done += 1;
                    }
                    Err(e) => {
                        clean = false;
                        tracing::warn!(inbox = %self.inbox.name, error = %e, "message waits in the mailbox");
                        self.pipeline.metrics().inbox_deferred(&self.inbox.name, Some(e.to_string()));
                    }
                }
            }
        }
        self.state().0 = clean.then_some(next);
        Ok(done)
    }
}
