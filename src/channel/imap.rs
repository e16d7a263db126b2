//! IMAP intake: one supervised task per inbox. It drains the folder, then waits with IDLE where the
//! server offers it (polling otherwise), and reconnects with exponential backoff after any error.
//! A message is flagged `\Seen $LoketDone` and moved to the processed folder only after the
//! pipeline committed it (invariant 1); a crash in between leaves it in the folder, and the next
//! drain finds it again as a duplicate and moves it then.

use std::fmt::Debug;
use std::time::Duration;

use async_imap::extensions::idle::IdleResponse;
use futures::TryStreamExt;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_util::sync::CancellationToken;

use super::ChannelError;
use crate::config::{Desk, ImapConfig, InboxConfig, TlsMode};
use crate::pipeline::{Action, Incoming, Pipeline};
use crate::store;

/// Keyword set on processed mail (and searched for when there is no processed folder).
pub const DONE_KEYWORD: &str = "$LoketDone";

pub trait ImapStream: AsyncRead + AsyncWrite + Unpin + Send + Debug {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send + Debug> ImapStream for T {}

pub type Session = async_imap::Session<Box<dyn ImapStream>>;

#[derive(Debug, thiserror::Error)]
pub enum ImapError {
    #[error("connect {0}: {1}")]
    Connect(String, String),
    #[error("IMAP: {0}")]
    Imap(#[from] async_imap::error::Error),
    #[error("login as {0} failed: {1}")]
    Login(String, String),
    #[error("OAuth token for {0}: {1}")]
    Token(String, super::oauth::OAuthError),
    #[error("pipeline: {0}")]
    Pipeline(#[from] crate::pipeline::PipelineError),
    #[error("store: {0}")]
    Store(#[from] store::StoreError),
    #[error("server sent no UIDVALIDITY for {0}")]
    NoUidValidity(String),
    #[error("the inbox lease went to another instance")]
    LeaseLost,
}

impl ImapError {
    /// Whether waiting can help: the network, the server, the store being away. A refused
    /// login or a server without UIDVALIDITY needs an operator (the session is still retried,
    /// with backoff, in case the account is fixed).
    pub fn is_temporary(&self) -> bool {
        match self {
            ImapError::Connect(..) | ImapError::Imap(_) | ImapError::LeaseLost => true,
            ImapError::Login(..) | ImapError::NoUidValidity(_) => false,
            ImapError::Token(_, e) => e.is_temporary(),
            ImapError::Pipeline(e) => e.is_temporary(),
            ImapError::Store(e) => e.is_temporary(),
        }
    }
}

impl From<ImapError> for ChannelError {
    fn from(e: ImapError) -> Self {
        if e.is_temporary() { ChannelError::temporary(e.to_string()) } else { ChannelError::permanent(e.to_string()) }
    }
}

/// How an inbox logs in.
#[derive(Clone)]
pub enum Login {
    /// `LOGIN user password`.
    Password(crate::config::Secret),
    /// `AUTHENTICATE XOAUTH2|OAUTHBEARER` with a token from the source.
    OAuth(std::sync::Arc<super::oauth::TokenSource>),
}

#[derive(Clone)]
pub struct ImapSource {
    pub pipeline: Pipeline,
    pub lease: super::lease::Lease,
    pub desk: Desk,
    pub inbox: InboxConfig,
    pub imap: ImapConfig,
    pub login: Login,
    /// The client secret's early warning is queued (or was before): no more store round trips.
    pub secret_warned: std::sync::Arc<std::sync::atomic::AtomicBool>,
    /// Messages (by UID) waiting after a temporary error.
    pub deferrals: std::sync::Arc<std::sync::Mutex<super::deferral::Deferrals>>,
}

impl ImapSource {
    /// Runs until `cancel` fires, reconnecting with backoff (1 s doubling to 60 s) on errors. The
    /// inbox is watched only while this instance holds its lease.
    pub async fn run(self, cancel: CancellationToken) {
        let mut delay = Duration::from_secs(1);
        loop {
            if !self.lease.acquire(&cancel).await {
                break;
            }
            let result = tokio::select! {
                r = self.session(&cancel) => r,
                _ = self.lease.hold() => Err(ImapError::LeaseLost),
            };
            match result {
                Ok(()) => break,
                Err(ImapError::LeaseLost) => {
                    delay = Duration::from_secs(1);
                    continue;
                }
                Err(e) => {
                    self.pipeline.metrics().inbox_error(&self.inbox.name, &e.to_string(), crate::now_ms());
                    self.alert_on_refusal(&e).await;
                    if e.is_temporary() {
                        tracing::warn!(inbox = %self.inbox.name, error = %e, retry_in_s = delay.as_secs(), "IMAP session ended");
                    } else {
                        tracing::error!(inbox = %self.inbox.name, error = %e, retry_in_s = delay.as_secs(), "IMAP session ended; check the inbox's configuration and account");
                    }
                }
            }
            tokio::select! {
                _ = cancel.cancelled() => break,
                _ = tokio::time::sleep(delay) => {}
            }
            delay = (delay * 2).min(Duration::from_secs(60));
        }
        self.lease.release().await;
        tracing::info!(inbox = %self.inbox.name, "IMAP intake stopped");
    }

    async fn connect(&self) -> Result<Session, ImapError> {
        let session = open_session(&self.imap, &self.login).await?;
        self.oauth_checks().await;
        Ok(session)
    }

    /// The credential refused (not a network trouble): the operators hear of it once per outage.
    async fn alert_on_refusal(&self, e: &ImapError) {
        let Login::OAuth(source) = &self.login else { return };
        let refused = match e {
            // Dovecot's `NO [UNAVAILABLE]`: the token could not be checked (the provider is away).
            ImapError::Login(_, why) => !why.contains("UNAVAILABLE"),
            ImapError::Token(_, t) => !t.is_temporary(),
            _ => false,
        };
        if !refused {
            return;
        }
        let o = &source.oauth;
        let text = e.to_string();
        let now = crate::now_ms();
        let kind = crate::oauth::alert::AlertKind::AuthFailed;
        let r = self
            .pipeline
            .alert_operators(&self.desk, &self.inbox, &o.credential_key(), &o.user, kind, "outage", &text, now)
            .await;
        if let Err(err) = r {
            tracing::warn!(inbox = %self.inbox.name, error = %err, "could not queue the operators' alert");
        }
    }

    /// After a successful OAuth login: the outage (if any) is over, and the client secret's end
    /// date is checked against the early-warning window.
    async fn oauth_checks(&self) {
        let Login::OAuth(source) = &self.login else { return };
        let o = &source.oauth;
        let cred = o.credential_key();
        let auth_failed = crate::oauth::alert::AlertKind::AuthFailed.as_str();
        if let Err(e) = store::clear_alerts(self.pipeline.store().pool(), &cred, auth_failed).await {
            tracing::warn!(inbox = %self.inbox.name, error = %e, "could not clear the outage alert");
        }
        self.secret_check().await;
    }

    /// The client secret's early warning, once per end date (after each login and IDLE round).
    async fn secret_check(&self) {
        let Login::OAuth(source) = &self.login else { return };
        if self.secret_warned.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        let o = &source.oauth;
        let cred = o.credential_key();
        let now = crate::now_ms();
        if let Some(day) = o.secret_expires
            && crate::oauth::alert::secret_warning_due(day, o.warn_days, now)
        {
            let left = crate::oauth::alert::secret_seconds_left(day, now).div_euclid(86_400);
            let text = format!("the client secret of app {} ends on {day} ({left} day(s) from now)", o.client_id);
            let kind = crate::oauth::alert::AlertKind::SecretExpiring;
            let period = day.to_string();
            let r =
                self.pipeline.alert_operators(&self.desk, &self.inbox, &cred, &o.user, kind, &period, &text, now).await;
            match r {
                Ok(_) => self.secret_warned.store(true, std::sync::atomic::Ordering::Relaxed),
                Err(e) => {
                    tracing::warn!(inbox = %self.inbox.name, error = %e, "could not queue the secret's early warning")
                }
            }
        }
    }

    async fn session(&self, cancel: &CancellationToken) -> Result<(), ImapError> {
        let mut session = self.connect().await?;
        if let Some(p) = &self.imap.processed_folder {
            // Fails harmlessly when the folder exists.
            let _ = session.create(p).await;
        }
        let mailbox = session.select(&self.imap.folder).await?;
        let uidvalidity = mailbox.uid_validity.ok_or_else(|| ImapError::NoUidValidity(self.imap.folder.clone()))?;
        let caps = session.capabilities().await?;
        let can_idle = self.imap.idle && caps.has_str("IDLE");
        let can_move = caps.has_str("MOVE");
        tracing::info!(inbox = %self.inbox.name, uidvalidity, idle = can_idle, "IMAP connected");
        let wait = Duration::from_secs(self.imap.poll_interval_secs.clamp(1, 25 * 60));
        loop {
            self.drain(&mut session, uidvalidity, can_move, cancel).await?;
            if cancel.is_cancelled() {
                break;
            }
            // Mail that arrived while draining was announced (EXISTS) in the responses to our own
            // commands; IDLE would not announce it again. Drain once more before idling.
            let mut arrived = false;
            while let Ok(r) = session.unsolicited_responses.try_recv() {
                arrived |= matches!(
                    r,
                    async_imap::types::UnsolicitedResponse::Exists(_)
                        | async_imap::types::UnsolicitedResponse::Recent(_)
                );
            }
            if arrived {
                continue;
            }
            if can_idle {
                let mut handle = session.idle();
                handle.init().await?;
                let res = {
                    let (fut, stop) = handle.wait_with_timeout(wait);
                    tokio::select! {
                        r = fut => Some(r),
                        _ = cancel.cancelled() => { drop(stop); None }
                    }
                };
                session = handle.done().await?;
                self.secret_check().await;
                match res {
                    None => break,
                    Some(Ok(IdleResponse::NewData(_) | IdleResponse::Timeout | IdleResponse::ManualInterrupt)) => {}
                    Some(Err(e)) => return Err(e.into()),
                }
            } else {
                tokio::select! {
                    _ = cancel.cancelled() => break,
                    _ = tokio::time::sleep(wait) => {}
                }
                session.noop().await?;
            }
        }
        let _ = session.logout().await;
        Ok(())
    }

    /// Processes every message waiting in the folder, in UID order, batch by batch: at most
    /// `limits.batch_messages` messages and, past the first, [`super::BATCH_BYTES`] a batch.
    async fn drain(
        &self,
        session: &mut Session,
        uidvalidity: u32,
        can_move: bool,
        cancel: &CancellationToken,
    ) -> Result<(), ImapError> {
        let query = if self.imap.processed_folder.is_some() {
            "NOT DELETED".to_string()
        } else {
            format!("NOT DELETED NOT KEYWORD {DONE_KEYWORD}")
        };
        let mut uids: Vec<u32> = session.uid_search(&query).await?.into_iter().collect();
        self.deferrals().new_round();
        self.pipeline.metrics().inbox_ok(&self.inbox.name, crate::now_ms());
        uids.sort_unstable();
        let max = self.pipeline.config().limits.max_message_bytes;
        for chunk in uids.chunks(self.pipeline.config().limits.batch_messages) {
            if cancel.is_cancelled() {
                break;
            }
            let set = uid_set(chunk);
            let sizes: Vec<(u32, u32)> = session
                .uid_fetch(&set, "(UID RFC822.SIZE)")
                .await?
                .try_collect::<Vec<_>>()
                .await?
                .iter()
                .filter_map(|f| Some((f.uid?, f.size.unwrap_or(0))))
                .collect();
            let (small, large): (Vec<_>, Vec<_>) = sizes.into_iter().partition(|(_, s)| (*s as usize) <= max);
            let mut done = Vec::new();
            let mut stop = None;
            for ids in by_bytes(&small, super::BATCH_BYTES) {
                if stop.is_some() {
                    break;
                }
                let fetches: Vec<_> =
                    session.uid_fetch(uid_set(&ids), "(UID BODY.PEEK[])").await?.try_collect().await?;
                let now = crate::now_ms();
                let ready: Vec<(u32, String, Incoming<'_>)> = fetches
                    .iter()
                    .filter_map(|f| Some((f.uid?, f.body()?)))
                    .map(|(uid, raw)| (uid, format!("{uidvalidity}:{uid}"), Incoming { raw, now }))
                    .filter(|(_, key, _)| self.deferrals().ready(key, now))
                    .collect();
                // One store transaction for the fetch (group commit). A permanent error is
                // quarantined by the pipeline; a temporary one makes that message wait while the
                // others flow.
                let batch: Vec<Incoming<'_>> = ready.iter().map(|(_, _, m)| *m).collect();
                let results = self.pipeline.process_batch(&self.inbox.name, &batch).await;
                for ((uid, key, _), result) in ready.iter().zip(results) {
                    let (uid, key) = (*uid, key.as_str());
                    match result {
                        Ok(out) => {
                            if out.action == Action::Quarantined {
                                tracing::warn!(inbox = %self.inbox.name, uid, reason = out.reason.as_deref().unwrap_or(""), "quarantined");
                            }
                            done.push(uid);
                            let mut d = self.deferrals();
                            d.done(key);
                            if d.is_empty() {
                                self.pipeline.metrics().inbox_deferred(&self.inbox.name, None);
                            }
                        }
                        Err(e) => {
                            tracing::warn!(inbox = %self.inbox.name, uid, error = %e, "message deferred");
                            let what = format!("message UID {uid} waits: {e}");
                            self.pipeline.metrics().inbox_deferred(&self.inbox.name, Some(what));
                            // The rest of the batch committed: marked done below all the same.
                            if self.deferrals().failed(key, crate::now_ms()) && stop.is_none() {
                                stop = Some(e);
                            }
                        }
                    }
                }
            }
            for (uid, size) in if stop.is_none() { large } else { Vec::new() } {
                let f: Vec<_> =
                    session.uid_fetch(uid.to_string(), "(UID BODY.PEEK[HEADER])").await?.try_collect().await?;
                let header = f.iter().find_map(|f| f.header()).unwrap_or_default();
                let reason = format!(
                    "message of {size} bytes exceeds limits.max_message_bytes ({max}); the original stays in IMAP folder {}",
                    self.imap.processed_folder.as_deref().unwrap_or(&self.imap.folder)
                );
                self.pipeline
                    .quarantine(&self.desk, &self.inbox, header, size as usize, &reason, crate::now_ms())
                    .await?;
                done.push(uid);
            }
            if !done.is_empty() {
                done.sort_unstable();
                self.mark_done(session, &done, can_move).await?;
                let last = *done.last().unwrap_or(&0);
                store::save_checkpoint(
                    self.pipeline.store().pool(),
                    &self.inbox.name,
                    uidvalidity as i64,
                    last as i64,
                    crate::now_ms(),
                )
                .await?;
            }
            if let Some(e) = stop {
                return Err(e.into());
            }
        }
        Ok(())
    }

    fn deferrals(&self) -> std::sync::MutexGuard<'_, super::deferral::Deferrals> {
        self.deferrals.lock().unwrap_or_else(|p| p.into_inner())
    }

    async fn mark_done(&self, session: &mut Session, uids: &[u32], can_move: bool) -> Result<(), ImapError> {
        let set = uid_set(uids);
        let _: Vec<_> =
            session.uid_store(&set, format!("+FLAGS.SILENT (\\Seen {DONE_KEYWORD})")).await?.try_collect().await?;
        if let Some(folder) = &self.imap.processed_folder {
            if can_move {
                session.uid_mv(&set, folder).await?;
            } else {
                session.uid_copy(&set, folder).await?;
                let _: Vec<_> = session.uid_store(&set, "+FLAGS.SILENT (\\Deleted)").await?.try_collect().await?;
                let _: Vec<_> = session.expunge().await?.try_collect().await?;
            }
        }
        Ok(())
    }
}

/// Connects (TLS as configured) and logs in: the session `serve` and `loket oauth test` use.
pub async fn open_session(c: &ImapConfig, login: &Login) -> Result<Session, ImapError> {
    let addr = format!("{}:{}", c.host, c.port);
    let cerr = |e: String| ImapError::Connect(addr.clone(), e);
    let tcp = tokio::time::timeout(Duration::from_secs(30), TcpStream::connect((c.host.as_str(), c.port)))
        .await
        .map_err(|_| cerr("timed out".into()))?
        .map_err(|e| cerr(e.to_string()))?;
    let tls = || -> Result<tokio_rustls::TlsConnector, ImapError> {
        let cfg = super::tls::client_config(c.ca_file.as_deref()).map_err(|e| cerr(e.to_string()))?;
        Ok(tokio_rustls::TlsConnector::from(cfg))
    };
    let name = || ServerName::try_from(c.host.clone()).map_err(|e| cerr(e.to_string()));
    let stream: Box<dyn ImapStream> = match c.tls {
        TlsMode::None => Box::new(tcp),
        TlsMode::Tls => Box::new(tls()?.connect(name()?, tcp).await.map_err(|e| cerr(e.to_string()))?),
        TlsMode::Starttls => {
            let mut client = async_imap::Client::new(tcp);
            client.read_response().await.map_err(|e| cerr(e.to_string()))?;
            client.run_command_and_check_ok("STARTTLS", None).await?;
            let tcp = client.into_inner();
            Box::new(tls()?.connect(name()?, tcp).await.map_err(|e| cerr(e.to_string()))?)
        }
    };
    let mut client = async_imap::Client::new(stream);
    if c.tls != TlsMode::Starttls {
        client.read_response().await.map_err(|e| cerr(e.to_string()))?.ok_or_else(|| cerr("no greeting".into()))?;
    }
    authenticate(client, c, login).await
}

/// Logs in with the password, or with a bearer token over SASL. A refused token is forgotten,
/// so that the next attempt gets a new one; the error carries what the server answered.
pub async fn authenticate(
    client: async_imap::Client<Box<dyn ImapStream>>,
    c: &ImapConfig,
    login: &Login,
) -> Result<Session, ImapError> {
    match login {
        Login::Password(pw) => {
            client.login(&c.user, &pw.0).await.map_err(|(e, _)| ImapError::Login(c.user.clone(), e.to_string()))
        }
        Login::OAuth(source) => {
            // A refused token is forgotten and a new one tried once: the cached token may have
            // been revoked or expired early. If the provider then refuses the refresh, the error
            // is the provider's own (e.g. `invalid_grant: AADSTS50173 …`).
            let mut client = client;
            let mut tries = 0;
            loop {
                tries += 1;
                let token = source.access_token().await.map_err(|e| ImapError::Token(c.user.clone(), e))?;
                let mech = source.oauth.mechanism;
                let auth = crate::oauth::sasl::TokenAuthenticator::new(mech, &c.user, &c.host, c.port, &token.0);
                let refusal = auth.refusal.clone();
                match client.authenticate(mech.sasl_name(), auth).await {
                    Ok(s) => return Ok(s),
                    Err((e, again)) => {
                        source.invalidate();
                        if tries >= 2 {
                            let said = refusal.lock().unwrap_or_else(|p| p.into_inner()).take();
                            let said = said.map(|s| format!(" (server's challenge: {s})")).unwrap_or_default();
                            let why = format!("AUTHENTICATE {} refused: {e}{said}", mech.sasl_name());
                            return Err(ImapError::Login(c.user.clone(), why));
                        }
                        client = again;
                    }
                }
            }
        }
    }
}

/// `sizes` (UID, RFC822.SIZE) in order, cut into runs of UIDs whose sizes add up to at most
/// `budget`, each run at least one message.
fn by_bytes(sizes: &[(u32, u32)], budget: usize) -> Vec<Vec<u32>> {
    let mut runs: Vec<Vec<u32>> = Vec::new();
    let mut bytes = 0usize;
    for &(uid, size) in sizes {
        match runs.last_mut() {
            Some(run) if bytes + size as usize <= budget => run.push(uid),
            _ => {
                runs.push(vec![uid]);
                bytes = 0;
            }
        }
        bytes += size as usize;
    }
    runs
}

/// `1,2,5` style UID set.
fn uid_set(uids: &[u32]) -> String {
    uids.iter().map(|u| u.to_string()).collect::<Vec<_>>().join(",")
}

/// Shared by `serve`: builds a source for an IMAP inbox.
pub fn source(
    pipeline: Pipeline,
    desk: &Desk,
    inbox: &InboxConfig,
    imap: &ImapConfig,
    holder: &str,
) -> Result<ImapSource, ChannelError> {
    let lease =
        super::lease::Lease { store: pipeline.store().clone(), inbox: inbox.name.clone(), holder: holder.to_string() };
    let login =
        login(imap, pipeline.store()).map_err(|e| ChannelError::permanent(format!("inbox {}: {e}", inbox.name)))?;
    Ok(ImapSource {
        pipeline,
        lease,
        desk: desk.clone(),
        inbox: inbox.clone(),
        imap: imap.clone(),
        login,
        secret_warned: Default::default(),
        deferrals: Default::default(),
    })
}

/// The inbox's login from its configuration and the environment.
pub fn login(imap: &ImapConfig, store: &store::Store) -> Result<Login, String> {
    match (&imap.oauth, &imap.password_env) {
        (Some(o), _) => {
            let env = |k: &str| std::env::var(k).ok();
            let checked = o.check(&imap.user, &env).map_err(|e| format!("imap.oauth: {}", e.join("; ")))?;
            Ok(Login::OAuth(super::oauth::shared(&checked, store)))
        }
        (None, Some(var)) => std::env::var(var)
            .map(|p| Login::Password(crate::config::Secret(p)))
            .map_err(|_| format!("environment variable {var} is not set")),
        (None, None) => Err("imap: no password_env and no [oauth]".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fetch_is_cut_where_its_bodies_pass_the_batchs_bytes_each_run_at_least_one() {
        let sizes = [(1, 600), (2, 300), (3, 5000), (4, 200), (5, 100), (6, 800)];
        assert_eq!(by_bytes(&sizes, 1000), [vec![1, 2], vec![3], vec![4, 5], vec![6]]);
        assert_eq!(by_bytes(&sizes, 1 << 20), [vec![1, 2, 3, 4, 5, 6]]);
        assert!(by_bytes(&[], 1000).is_empty());
        assert_eq!(uid_set(&[1, 2, 5]), "1,2,5");
    }
}
