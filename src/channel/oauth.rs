//! OAuth2 token sources for IMAP and SMTP logins: the calls to the provider's token endpoint
//! (client credentials, refresh token, device code) and an in-memory cache per credential that
//! renews the access token ahead of its expiry (`oauth::token::renewal_due`). Every inbox and
//! relay with the same app and mailbox share one [`TokenSource`] ([`shared`]), so they share one
//! access token and one refresh-token chain. In refresh-token mode the stored, sealed refresh
//! token is read, used and replaced by the rotated one in one store transaction, which also keeps
//! a second instance from spending the same token at the same moment.

use std::collections::HashMap;
use std::sync::{Arc, LazyLock, Mutex};
use std::time::Duration;

use crate::config::Secret;
use crate::oauth::config::{Flow, OAuth};
use crate::oauth::crypto::{self, CryptoError};
use crate::oauth::token::{self, Answer, DevicePoll, DeviceStart, Granted};
use crate::store::{self, Store, StoreError};

/// Longest wait for a token endpoint.
const HTTP_TIMEOUT: Duration = Duration::from_secs(20);

#[derive(Debug, thiserror::Error)]
pub enum OAuthError {
    #[error("token endpoint {url} unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("token endpoint {url} refused: {answer}")]
    Refused { url: String, answer: Answer },
    #[error(
        "no refresh token stored for {user}: run `loket oauth login --inbox NAME` (or the refresh token was \
         revoked: log in again)"
    )]
    NotLoggedIn { user: String },
    #[error("{0}")]
    Crypto(#[from] CryptoError),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("device login: {0}")]
    Device(String),
}

impl OAuthError {
    /// Whether waiting may help; a refused client, scope or grant needs the operator.
    pub fn is_temporary(&self) -> bool {
        match self {
            OAuthError::Unreachable { .. } => true,
            OAuthError::Refused { answer: Answer::Refused(e), .. } => e.is_temporary(),
            OAuthError::Refused { answer: Answer::Malformed { status, .. }, .. } => *status >= 500 || *status == 429,
            OAuthError::Store(e) => e.is_temporary(),
            OAuthError::NotLoggedIn { .. } | OAuthError::Crypto(_) | OAuthError::Device(_) => false,
        }
    }

    /// Whether the grant is gone (revoked, expired): only `loket oauth login` brings it back.
    pub fn grant_is_gone(&self) -> bool {
        match self {
            OAuthError::Refused { answer: Answer::Refused(e), .. } => e.grant_is_gone(),
            OAuthError::NotLoggedIn { .. } => true,
            _ => false,
        }
    }
}

#[derive(Debug, Clone)]
struct Cached {
    token: Secret,
    obtained_ms: i64,
    expires_ms: i64,
}

/// What `/metrics` and `/healthz` show of a credential.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TokenStatus {
    /// When the cached access token expires (ms), if there is one.
    pub access_expires_ms: Option<i64>,
    /// The last failure to get a token, word for word, until a token is obtained again.
    pub last_error: Option<String>,
}

/// One credential's tokens.
#[derive(Debug)]
pub struct TokenSource {
    pub oauth: OAuth,
    store: Store,
    http: reqwest::Client,
    cache: Mutex<Option<Cached>>,
    last_error: Mutex<Option<String>>,
    /// One refresh at a time in this process (the store transaction covers other instances).
    refreshing: tokio::sync::Mutex<()>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

static SOURCES: LazyLock<Mutex<HashMap<String, Arc<TokenSource>>>> = LazyLock::new(Default::default);

/// The process's token source for this credential (made on first use).
pub fn shared(oauth: &OAuth, store: &Store) -> Arc<TokenSource> {
    lock(&SOURCES)
        .entry(oauth.credential_key())
        .or_insert_with(|| Arc::new(TokenSource::new(oauth.clone(), store.clone())))
        .clone()
}

/// Every credential in use, for `/metrics` and `/healthz`.
pub fn all() -> Vec<Arc<TokenSource>> {
    let mut v: Vec<_> = lock(&SOURCES).values().cloned().collect();
    v.sort_by_key(|s| s.oauth.credential_key());
    v
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().timeout(HTTP_TIMEOUT).build().unwrap_or_default()
}

/// POSTs a form to a token endpoint; returns the HTTP status and body.
async fn post(http: &reqwest::Client, url: &str, form: &[(&str, &str)]) -> Result<(u16, String), OAuthError> {
    let unreachable = |e: reqwest::Error| OAuthError::Unreachable { url: url.to_string(), message: e.to_string() };
    let r = http.post(url).form(form).send().await.map_err(unreachable)?;
    let status = r.status().as_u16();
    let body = r.text().await.map_err(unreachable)?;
    Ok((status, body))
}

impl TokenSource {
    pub fn new(oauth: OAuth, store: Store) -> Self {
        Self {
            oauth,
            store,
            http: client(),
            cache: Mutex::new(None),
            last_error: Mutex::new(None),
            refreshing: tokio::sync::Mutex::new(()),
        }
    }

    pub fn status(&self) -> TokenStatus {
        TokenStatus {
            access_expires_ms: lock(&self.cache).as_ref().map(|c| c.expires_ms),
            last_error: lock(&self.last_error).clone(),
        }
    }

    /// Forgets the cached access token (the server refused it): the next login gets a new one.
    pub fn invalidate(&self) {
        *lock(&self.cache) = None;
    }

    fn cached(&self, now_ms: i64) -> Option<Secret> {
        lock(&self.cache)
            .as_ref()
            .filter(|c| !token::renewal_due(c.obtained_ms, c.expires_ms, now_ms))
            .map(|c| c.token.clone())
    }

    /// A valid access token: the cached one, or a new one when it is due for renewal.
    pub async fn access_token(&self) -> Result<Secret, OAuthError> {
        if let Some(t) = self.cached(crate::now_ms()) {
            return Ok(t);
        }
        let _one = self.refreshing.lock().await;
        if let Some(t) = self.cached(crate::now_ms()) {
            return Ok(t);
        }
        let now = crate::now_ms();
        let got = match self.oauth.flow {
            Flow::ClientCredentials => self.client_credentials().await,
            Flow::RefreshToken => self.refresh(now).await,
        };
        match got {
            Ok(g) => {
                let expires_ms = now + g.expires_in * 1000;
                *lock(&self.cache) = Some(Cached { token: g.access_token.clone(), obtained_ms: now, expires_ms });
                *lock(&self.last_error) = None;
                tracing::info!(user = %self.oauth.user, expires_in_s = g.expires_in, "OAuth access token obtained");
                Ok(g.access_token)
            }
            Err(e) => {
                *lock(&self.last_error) = Some(e.to_string());
                Err(e)
            }
        }
    }

    fn with_secret<'a>(&'a self, form: &mut Vec<(&'static str, &'a str)>) {
        if let Some(s) = &self.oauth.client_secret {
            form.push(("client_secret", s.0.as_str()));
        }
    }

    async fn token_call(&self, form: &[(&str, &str)]) -> Result<Granted, OAuthError> {
        let url = &self.oauth.token_url;
        let (status, body) = post(&self.http, url, form).await?;
        token::parse_token(status, &body).map_err(|answer| OAuthError::Refused { url: url.clone(), answer })
    }

    async fn client_credentials(&self) -> Result<Granted, OAuthError> {
        client_credentials(&self.http, &self.oauth).await
    }

    fn key(&self) -> Result<[u8; 32], OAuthError> {
        self.oauth.key.as_ref().and_then(|k| crypto::parse_key(&k.0)).ok_or(OAuthError::Crypto(CryptoError::Open))
    }

    /// Refresh-token mode: read the stored token, spend it, store the rotated one, one transaction.
    async fn refresh(&self, now: i64) -> Result<Granted, OAuthError> {
        let key = self.key()?;
        let cred = self.oauth.credential_key();
        let mut tx = self.store.begin().await?;
        let Some(row) = store::lock_grant(&mut tx, self.store.backend(), &cred).await? else {
            return Err(OAuthError::NotLoggedIn { user: self.oauth.user.clone() });
        };
        let refresh_token = crypto::open(&key, &cred, &row.sealed_refresh_token)?;
        let mut form = vec![
            ("grant_type", "refresh_token"),
            ("client_id", self.oauth.client_id.as_str()),
            ("refresh_token", refresh_token.as_str()),
            ("scope", self.oauth.scope.as_str()),
        ];
        self.with_secret(&mut form);
        let granted = self.token_call(&form).await?;
        if let Some(new) = &granted.refresh_token {
            let sealed = crypto::seal(&key, &cred, &new.0)?;
            store::replace_refresh_token(&mut tx, &cred, &sealed, now).await?;
        }
        self.store.commit(tx).await?;
        if granted.refresh_token.is_some() {
            tracing::info!(user = %self.oauth.user, rotations = row.rotations + 1, "OAuth refresh token rotated and stored");
        }
        Ok(granted)
    }
}

/// A client-credentials token, without the cache (`loket check-config`).
pub async fn fetch_client_credentials(oauth: &OAuth) -> Result<Granted, OAuthError> {
    client_credentials(&client(), oauth).await
}

async fn client_credentials(http: &reqwest::Client, oauth: &OAuth) -> Result<Granted, OAuthError> {
    let mut form = vec![
        ("grant_type", "client_credentials"),
        ("client_id", oauth.client_id.as_str()),
        ("scope", oauth.scope.as_str()),
    ];
    if let Some(s) = &oauth.client_secret {
        form.push(("client_secret", s.0.as_str()));
    }
    let url = &oauth.token_url;
    let (status, body) = post(http, url, &form).await?;
    token::parse_token(status, &body).map_err(|answer| OAuthError::Refused { url: url.clone(), answer })
}

/// `loket oauth login`, step one: asks the provider for a device code.
pub async fn device_start(oauth: &OAuth) -> Result<DeviceStart, OAuthError> {
    let http = client();
    let mut form = vec![("client_id", oauth.client_id.as_str()), ("scope", oauth.scope.as_str())];
    if let Some(s) = &oauth.client_secret {
        form.push(("client_secret", s.0.as_str()));
    }
    let (status, body) = post(&http, &oauth.device_url, &form).await?;
    token::parse_device(status, &body).map_err(|answer| OAuthError::Refused { url: oauth.device_url.clone(), answer })
}

/// `loket oauth login`, step two: polls until the user approved (honouring `interval` and
/// `slow_down`), then stores the refresh token sealed. Returns the granted token.
pub async fn device_finish(oauth: &OAuth, store: &Store, start: &DeviceStart) -> Result<Granted, OAuthError> {
    let http = client();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(start.expires_in as u64);
    let mut interval = Duration::from_secs(start.interval as u64);
    let granted = loop {
        tokio::time::sleep(interval).await;
        if tokio::time::Instant::now() > deadline {
            return Err(OAuthError::Device("the code expired before it was entered; run the login again".into()));
        }
        let mut form = vec![
            ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
            ("client_id", oauth.client_id.as_str()),
            ("device_code", start.device_code.0.as_str()),
        ];
        if let Some(s) = &oauth.client_secret {
            form.push(("client_secret", s.0.as_str()));
        }
        let (status, body) = post(&http, &oauth.token_url, &form).await?;
        match token::parse_device_poll(status, &body) {
            DevicePoll::Pending => {}
            DevicePoll::SlowDown => interval += Duration::from_secs(5),
            DevicePoll::Granted(g) => break g,
            DevicePoll::Failed(answer) => return Err(OAuthError::Refused { url: oauth.token_url.clone(), answer }),
        }
    };
    let Some(rt) = &granted.refresh_token else {
        return Err(OAuthError::Device(
            "the provider granted no refresh token (Microsoft: the scope needs offline_access)".into(),
        ));
    };
    let key = oauth.key.as_ref().and_then(|k| crypto::parse_key(&k.0)).ok_or(CryptoError::Open)?;
    let cred = oauth.credential_key();
    let sealed = crypto::seal(&key, &cred, &rt.0)?;
    store::save_grant(store.pool(), &cred, &sealed, crate::now_ms()).await?;
    Ok(granted)
}

/// `loket oauth import`: stores a refresh token obtained elsewhere (Google's Gmail scope is not
/// allowed in its device flow) after spending it once, so that a wrong or revoked token is refused
/// here with the provider's words instead of at the daemon's first login. Keeps the rotated token
/// when the provider sends one, else the given one.
pub async fn import_refresh_token(oauth: &OAuth, store: &Store, refresh_token: &str) -> Result<Granted, OAuthError> {
    let http = client();
    let mut form = vec![
        ("grant_type", "refresh_token"),
        ("client_id", oauth.client_id.as_str()),
        ("refresh_token", refresh_token),
        ("scope", oauth.scope.as_str()),
    ];
    if let Some(s) = &oauth.client_secret {
        form.push(("client_secret", s.0.as_str()));
    }
    let (status, body) = post(&http, &oauth.token_url, &form).await?;
    let granted = token::parse_token(status, &body)
        .map_err(|answer| OAuthError::Refused { url: oauth.token_url.clone(), answer })?;
    let keep = granted.refresh_token.as_ref().map(|t| t.0.as_str()).unwrap_or(refresh_token);
    let key = oauth.key.as_ref().and_then(|k| crypto::parse_key(&k.0)).ok_or(CryptoError::Open)?;
    let cred = oauth.credential_key();
    let sealed = crypto::seal(&key, &cred, keep)?;
    store::save_grant(store.pool(), &cred, &sealed, crate::now_ms()).await?;
    Ok(granted)
}
