//! Outbound transports: SMTP (lettre) and a directory of `.eml` files. Only the outbox worker
//! calls them (style rule: only the outbox sends). With `[outbound.smtp.oauth]` the relay
//! authenticates with XOAUTH2: lettre's credentials are fixed when its transport is built, so
//! the transport is rebuilt whenever the token source hands out a new access token. lettre has
//! no OAUTHBEARER (RFC 7628), so with `mechanism = "oauthbearer"` Loket opens lettre's SMTP
//! connections itself, sends `AUTH OAUTHBEARER` as a raw command and keeps the logged-in
//! connections for the next messages (up to `outbound.concurrency`).

use std::path::PathBuf;
use std::time::Duration;

use base64::Engine;
use lettre::address::Envelope;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{AsyncSmtpConnection, Certificate, Tls, TlsParameters, TlsParametersBuilder};
use lettre::transport::smtp::extension::ClientId;
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::ChannelError;
use crate::config::{OutboundConfig, SmtpConfig, TlsMode, TransportKind};

pub enum Transport {
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
    /// SMTP with XOAUTH2.
    SmtpOAuth(Box<OAuthSmtp>),
    File(PathBuf),
    /// Microsoft Graph's `sendMail`.
    Graph(std::sync::Arc<super::graph::GraphClient>),
}

/// An SMTP relay that logs in with a bearer token.
pub struct OAuthSmtp {
    builder: AsyncSmtpTransportBuilder,
    user: String,
    source: std::sync::Arc<super::oauth::TokenSource>,
    /// The transport built for the current access token.
    current: tokio::sync::Mutex<Option<(String, AsyncSmtpTransport<Tokio1Executor>)>>,
    /// Set for OAUTHBEARER: how to open the connections lettre's transport cannot log in.
    bearer: Option<BearerRelay>,
}

/// OAUTHBEARER relay connections: opened and logged in by Loket, kept idle between messages.
struct BearerRelay {
    host: String,
    port: u16,
    timeout: Duration,
    tls: TlsMode,
    params: Option<TlsParameters>,
    max_idle: usize,
    /// Logged-in connections and the access token each logged in with.
    idle: tokio::sync::Mutex<Vec<(String, AsyncSmtpConnection)>>,
}

/// `AUTH OAUTHBEARER <initial response>` as lettre's connection writes a command.
struct AuthOauthbearer(String);

impl std::fmt::Display for AuthOauthbearer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "AUTH OAUTHBEARER {}\r\n", self.0)
    }
}

/// A raw SASL response line (RFC 7628's `^A` after an error challenge).
struct SaslLine(&'static str);

impl std::fmt::Display for SaslLine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}\r\n", self.0)
    }
}

impl BearerRelay {
    /// An idle connection logged in with `token`, or a new one.
    async fn connection(&self, user: &str, token: &str) -> Result<AsyncSmtpConnection, lettre::transport::smtp::Error> {
        {
            let mut idle = self.idle.lock().await;
            while let Some((t, mut conn)) = idle.pop() {
                if t == token && !conn.has_broken() && conn.test_connected().await {
                    return Ok(conn);
                }
                conn.abort().await;
            }
        }
        let hello = ClientId::default();
        let wrapper = if self.tls == TlsMode::Tls { self.params.clone() } else { None };
        let mut conn = AsyncSmtpConnection::connect_tokio1(
            (self.host.as_str(), self.port),
            Some(self.timeout),
            &hello,
            wrapper,
            None,
        )
        .await?;
        if self.tls == TlsMode::Starttls
            && let Some(params) = self.params.clone()
        {
            conn.starttls(params, &hello).await?;
        }
        let initial = crate::oauth::sasl::oauthbearer(user, &self.host, self.port, token);
        let first = conn.command(AuthOauthbearer(base64::engine::general_purpose::STANDARD.encode(initial))).await?;
        if first.has_code(334) {
            // The server's error challenge (RFC 7628 §3.2.3): answered with ^A, it ends in 535.
            conn.command(SaslLine("AQ==")).await?;
        }
        Ok(conn)
    }

    async fn send(
        &self,
        user: &str,
        token: &str,
        env: &Envelope,
        raw: &[u8],
    ) -> Result<(), lettre::transport::smtp::Error> {
        let mut conn = self.connection(user, token).await?;
        match conn.send(env, raw).await {
            Ok(_) => {
                let mut idle = self.idle.lock().await;
                if idle.len() < self.max_idle {
                    idle.push((token.to_string(), conn));
                } else {
                    drop(idle);
                    let _ = conn.quit().await;
                }
                Ok(())
            }
            Err(e) => {
                conn.abort().await;
                Err(e)
            }
        }
    }
}

impl OAuthSmtp {
    /// The current access token. A token refused or unobtainable keeps the message waiting in the
    /// outbox (the operator logs in again); it never fails the message.
    async fn token(&self) -> Result<crate::config::Secret, ChannelError> {
        self.source
            .access_token()
            .await
            .map_err(|e| ChannelError::temporary(format!("OAuth token for {}: {e}", self.user)))
    }

    async fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, ChannelError> {
        let token = self.token().await?;
        let mut current = self.current.lock().await;
        if let Some((t, transport)) = current.as_ref()
            && *t == token.0
        {
            return Ok(transport.clone());
        }
        let transport = self
            .builder
            .clone()
            .credentials(Credentials::new(self.user.clone(), token.0.clone()))
            .authentication(vec![Mechanism::Xoauth2])
            .build();
        *current = Some((token.0, transport.clone()));
        Ok(transport)
    }
}

/// lettre's builder for the relay: host, port, timeout and TLS (no credentials).
fn smtp_builder(s: &SmtpConfig, concurrency: usize) -> Result<AsyncSmtpTransportBuilder, ChannelError> {
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
        .port(s.port)
        .timeout(Some(Duration::from_secs(s.timeout_secs)))
        .pool_config(PoolConfig::new().max_size(concurrency.clamp(1, 256) as u32));
    if let Some(params) = tls_params(s)? {
        b = b.tls(if s.tls == TlsMode::Tls { Tls::Wrapper(params) } else { Tls::Required(params) });
    }
    Ok(b)
}

/// The relay's TLS parameters (its CA file added), unless `tls = "none"`.
fn tls_params(s: &SmtpConfig) -> Result<Option<TlsParameters>, ChannelError> {
    let setup = |m: String| ChannelError::permanent(m);
    if s.tls == TlsMode::None {
        return Ok(None);
    }
    let mut pb = TlsParametersBuilder::new(s.host.clone());
    if let Some(ca) = &s.ca_file {
        let pem = std::fs::read(ca).map_err(|e| setup(format!("{}: {e}", ca.display())))?;
        let cert = Certificate::from_pem(&pem).map_err(|e| setup(format!("{}: {e}", ca.display())))?;
        pb = pb.add_root_certificate(cert);
    }
    pb.build_rustls().map(Some).map_err(|e| setup(format!("outbound.smtp TLS: {e}")))
}

impl Transport {
    /// Errors are setup errors ([`ChannelError::Permanent`]). The store keeps an OAuth relay's
    /// refresh token.
    pub fn from_config(cfg: &OutboundConfig, store: &crate::store::Store) -> Result<Self, ChannelError> {
        let setup = |m: String| ChannelError::permanent(m);
        match cfg.transport {
            TransportKind::File => {
                std::fs::create_dir_all(&cfg.directory)
                    .map_err(|e| setup(format!("outbound.directory {}: {e}", cfg.directory.display())))?;
                Ok(Transport::File(cfg.directory.clone()))
            }
            TransportKind::Graph => {
                let g = cfg.graph.as_ref().ok_or_else(|| setup("outbound.graph missing".into()))?;
                let env = |k: &str| std::env::var(k).ok();
                let oauth = g.oauth(&env).map_err(|e| setup(format!("outbound.graph: {}", e.join("; "))))?;
                let source = super::oauth::shared(&oauth, store);
                Ok(Transport::Graph(std::sync::Arc::new(super::graph::GraphClient::new(g.endpoint.as_deref(), source))))
            }
            TransportKind::Smtp => {
                let s = cfg.smtp.as_ref().ok_or_else(|| setup("outbound.smtp missing".into()))?;
                let mut b = smtp_builder(s, cfg.concurrency)?;
                if let (Some(o), Some(user)) = (&s.oauth, &s.user) {
                    let env = |k: &str| std::env::var(k).ok();
                    let checked =
                        o.check(user, &env).map_err(|e| setup(format!("outbound.smtp.oauth: {}", e.join("; "))))?;
                    let bearer = (checked.mechanism == crate::oauth::config::Mechanism::Oauthbearer)
                        .then(|| {
                            Ok::<_, ChannelError>(BearerRelay {
                                host: s.host.clone(),
                                port: s.port,
                                timeout: Duration::from_secs(s.timeout_secs),
                                tls: s.tls,
                                params: tls_params(s)?,
                                max_idle: cfg.concurrency.clamp(1, 256),
                                idle: tokio::sync::Mutex::new(Vec::new()),
                            })
                        })
                        .transpose()?;
                    return Ok(Transport::SmtpOAuth(Box::new(OAuthSmtp {
                        builder: b,
                        user: user.clone(),
                        source: super::oauth::shared(&checked, store),
                        current: tokio::sync::Mutex::new(None),
                        bearer,
                    })));
                }
                if let (Some(user), Some(var)) = (&s.user, &s.password_env) {
                    let pw = std::env::var(var).map_err(|_| setup(format!("environment variable {var} is not set")))?;
                    b = b.credentials(Credentials::new(user.clone(), pw));
                }
                Ok(Transport::Smtp(Box::new(b.build())))
            }
        }
    }

    /// Connects and logs in without sending (`loket oauth test`); the file transport has nothing
    /// to check.
    pub async fn check(&self) -> Result<(), ChannelError> {
        let t = match self {
            Transport::Smtp(t) => (**t).clone(),
            Transport::SmtpOAuth(o) => match &o.bearer {
                Some(relay) => {
                    let token = o.token().await?;
                    let mut conn = relay
                        .connection(&o.user, &token.0)
                        .await
                        .map_err(|e| ChannelError::temporary(e.to_string()))?;
                    let _ = conn.quit().await;
                    return Ok(());
                }
                None => o.transport().await?,
            },
            Transport::File(_) | Transport::Graph(_) => return Ok(()),
        };
        match t.test_connection().await {
            Ok(true) => Ok(()),
            Ok(false) => Err(ChannelError::temporary("the SMTP server did not answer NOOP")),
            Err(e) => Err(ChannelError::temporary(e.to_string())),
        }
    }

    /// Sends `raw` from `sender` to `recipients`. `name` names the file for the file transport.
    pub async fn send(&self, name: &str, sender: &str, recipients: &[String], raw: &[u8]) -> Result<(), ChannelError> {
        match self {
            Transport::Smtp(t) => {
                let env = envelope(sender, recipients)?;
                t.send_raw(&env, raw).await.map(|_| ()).map_err(|e| {
                    // SMTP 5xx: the server refuses for good; 4xx, network and timeouts pass.
                    if e.is_permanent() {
                        ChannelError::permanent(e.to_string())
                    } else {
                        ChannelError::temporary(e.to_string())
                    }
                })
            }
            Transport::SmtpOAuth(o) => {
                let env = envelope(sender, recipients)?;
                let sent = match &o.bearer {
                    Some(relay) => {
                        let token = o.token().await?;
                        relay.send(&o.user, &token.0, &env, raw).await
                    }
                    None => o.transport().await?.send_raw(&env, raw).await.map(|_| ()),
                };
                let mechanism = if o.bearer.is_some() { "OAUTHBEARER" } else { "XOAUTH2" };
                sent.map_err(|e| {
                    // A refused token (535, or lettre's "does not expect a challenge" when the
                    // server answers XOAUTH2 with its 334 error challenge): forget the token and
                    // let the message wait for a new one.
                    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
                    if e.is_client() || code.starts_with("53") {
                        o.source.invalidate();
                        ChannelError::temporary(format!("SMTP AUTH {mechanism} as {} refused: {e}", o.user))
                    } else if e.is_permanent() {
                        ChannelError::permanent(e.to_string())
                    } else {
                        ChannelError::temporary(e.to_string())
                    }
                })
            }
            Transport::Graph(client) => client.send_mime(sender, raw).await.map_err(ChannelError::from),
            Transport::File(dir) => {
                let safe: String =
                    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
                let tmp = dir.join(format!(".{safe}.tmp"));
                let dst = dir.join(format!("{safe}.eml"));
                // Written and renamed in one trip to the blocking pool, not one each.
                let raw = raw.to_vec();
                let (written, dst) = tokio::task::spawn_blocking(move || {
                    let written = std::fs::write(&tmp, raw).and_then(|()| std::fs::rename(&tmp, &dst));
                    (written, dst)
                })
                .await
                .map_err(|e| ChannelError::temporary(format!("writing a mail file: {e}")))?;
                written.map_err(|e| ChannelError::temporary(format!("{}: {e}", dst.display())))
            }
        }
    }
}

fn envelope(sender: &str, recipients: &[String]) -> Result<Envelope, ChannelError> {
    let perm = ChannelError::permanent;
    let from: Address = sender.parse().map_err(|e| perm(format!("sender {sender}: {e}")))?;
    let to = recipients
        .iter()
        .map(|r| r.parse::<Address>().map_err(|e| perm(format!("recipient {r}: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    Envelope::new(Some(from), to).map_err(|e| perm(e.to_string()))
}
