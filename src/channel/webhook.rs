//! Outbound webhooks' HTTP side (reqwest): one signed POST of an event's body to a subscriber,
//! within the subscription's time, redirects not followed, at most `webhook::MAX_RESPONSE_BYTES`
//! of a refusal read. Any answer but 2xx, and any network error or timeout, is temporary: the
//! outbox worker tries again until the subscription's give-up time.

use crate::channel::ChannelError;
use crate::webhook::{self, Subscription};

/// The HTTP client every subscription shares.
#[derive(Clone)]
pub struct WebhookClient {
    http: reqwest::Client,
}

impl WebhookClient {
    pub fn new() -> Result<Self, ChannelError> {
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .connect_timeout(std::time::Duration::from_secs(10))
            .user_agent(concat!("loket/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| ChannelError::permanent(format!("webhook client: {e}")))?;
        Ok(Self { http })
    }

    /// POSTs `body` (event `event_id` of type `event_type`) to `sub`, signed at `now_secs`.
    pub async fn post(
        &self,
        sub: &Subscription,
        event_id: &str,
        event_type: &str,
        body: &str,
        now_secs: i64,
    ) -> Result<(), ChannelError> {
        let signature = webhook::sign(sub.secret.0.as_bytes(), now_secs, body.as_bytes());
        let sent = self
            .http
            .post(sub.url.clone())
            .timeout(sub.timeout)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(webhook::SIGNATURE_HEADER, signature)
            .header(webhook::EVENT_ID_HEADER, event_id)
            .header(webhook::EVENT_TYPE_HEADER, event_type)
            .body(body.to_string())
            .send()
            .await;
        let mut resp = match sent {
            Ok(r) => r,
            // reqwest's error names the URL; only its kind is kept.
            Err(e) if e.is_timeout() => return Err(ChannelError::temporary("timed out")),
            Err(e) if e.is_connect() => return Err(ChannelError::temporary("connection refused or unreachable")),
            Err(e) => return Err(ChannelError::temporary(format!("request failed: {}", e.without_url()))),
        };
        let status = resp.status();
        if status.is_success() {
            return Ok(());
        }
        // A refusal's first bytes, as printable text, for the operator.
        let mut head = Vec::new();
        while head.len() < webhook::MAX_RESPONSE_BYTES {
            match resp.chunk().await {
                Ok(Some(c)) => head.extend_from_slice(&c[..c.len().min(webhook::MAX_RESPONSE_BYTES - head.len())]),
                _ => break,
            }
        }
        let text: String =
            String::from_utf8_lossy(&head).chars().map(|c| if c.is_control() { ' ' } else { c }).take(200).collect();
        Err(ChannelError::temporary(format!("HTTP {}: {}", status.as_u16(), text.trim())))
    }
}
