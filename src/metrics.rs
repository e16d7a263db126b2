//! In-process counters and inbox health for `/metrics` and `/healthz`. Counters are per process,
//! as Prometheus expects; figures that must agree across instances (outbox depth, tickets at risk)
//! are read from the store when scraped.

use std::collections::BTreeMap;
use std::sync::Mutex;

/// One inbox's connection state.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct InboxHealth {
    pub kind: String,
    pub connected: bool,
    pub last_ok_ms: Option<i64>,
    pub last_error: Option<String>,
    pub last_error_ms: Option<i64>,
    /// A message waiting after a temporary error: which one and why (the others flow).
    pub deferred: Option<String>,
}

#[derive(Debug, Default)]
pub struct Metrics {
    messages: Mutex<BTreeMap<(String, String, String), u64>>,
    lag: Mutex<(f64, u64)>,
    inboxes: Mutex<BTreeMap<String, InboxHealth>>,
    floods: Mutex<BTreeMap<(String, String), u64>>,
    undelivered: Mutex<BTreeMap<(String, String, i64), u64>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

impl Metrics {
    /// Counts a processed message; `lag_ms` is the time since the message's Date header.
    pub fn message(&self, desk: &str, inbox: &str, action: &str, lag_ms: Option<i64>) {
        *lock(&self.messages).entry((desk.into(), inbox.into(), action.into())).or_default() += 1;
        if let Some(l) = lag_ms.filter(|l| (0..86_400_000 * 30).contains(l)) {
            let mut g = lock(&self.lag);
            g.0 += l as f64 / 1000.0;
            g.1 += 1;
        }
    }

    /// Counts a flood measure taken (`ticket_diverted`, `notification_suppressed`, `digest_sent`).
    pub fn flood(&self, desk: &str, what: &str) {
        *lock(&self.floods).entry((desk.into(), what.into())).or_default() += 1;
    }

    /// Counts a chat message the platform reported as not delivered, by its error code.
    pub fn chat_undelivered(&self, desk: &str, channel: &str, code: i64) {
        *lock(&self.undelivered).entry((desk.into(), channel.into(), code)).or_default() += 1;
    }

    pub fn undelivered(&self) -> BTreeMap<(String, String, i64), u64> {
        lock(&self.undelivered).clone()
    }

    pub fn floods(&self) -> BTreeMap<(String, String), u64> {
        lock(&self.floods).clone()
    }

    pub fn register_inbox(&self, name: &str, kind: &str) {
        lock(&self.inboxes).entry(name.into()).or_default().kind = kind.into();
    }

    pub fn inbox_ok(&self, name: &str, now: i64) {
        let mut g = lock(&self.inboxes);
        let h = g.entry(name.into()).or_default();
        h.connected = true;
        h.last_ok_ms = Some(now);
    }

    pub fn inbox_error(&self, name: &str, error: &str, now: i64) {
        let mut g = lock(&self.inboxes);
        let h = g.entry(name.into()).or_default();
        h.connected = false;
        h.last_error = Some(error.chars().take(300).collect());
        h.last_error_ms = Some(now);
    }

    /// Names a message that waits after a temporary error, or clears it (`None`).
    pub fn inbox_deferred(&self, name: &str, what: Option<String>) {
        lock(&self.inboxes).entry(name.into()).or_default().deferred = what.map(|w| w.chars().take(300).collect());
    }

    pub fn inboxes(&self) -> BTreeMap<String, InboxHealth> {
        lock(&self.inboxes).clone()
    }

    pub fn messages(&self) -> BTreeMap<(String, String, String), u64> {
        lock(&self.messages).clone()
    }

    /// (sum of seconds, count) of ingest lag.
    pub fn lag(&self) -> (f64, u64) {
        *lock(&self.lag)
    }
}
