//! Outbound transports: SMTP (lettre) and a directory of `.eml` files. Only the outbox worker
//! calls them (style rule: only the outbox sends). With `[outbound.smtp.oauth]` the relay
//! authenticates with XOAUTH2: lettre's credentials are fixed when its transport is built, so
//! the transport is rebuilt whenever the token source hands out a new access token.

use std::path::PathBuf;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::PoolConfig;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{Certificate, Tls, TlsParametersBuilder};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::ChannelError;
use crate::config::{OutboundConfig, SmtpConfig, TlsMode, TransportKind};

pub enum Transport {
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
    /// SMTP with XOAUTH2.
    SmtpOAuth(Box<OAuthSmtp>),
    File(PathBuf),
}

/// An SMTP relay that logs in with a bearer token.
pub struct OAuthSmtp {
    builder: AsyncSmtpTransportBuilder,
    user: String,
    source: std::sync::Arc<super::oauth::TokenSource>,
    /// The transport built for the current access token.
    current: tokio::sync::Mutex<Option<(String, AsyncSmtpTransport<Tokio1Executor>)>>,
}

impl OAuthSmtp {
    async fn transport(&self) -> Result<AsyncSmtpTransport<Tokio1Executor>, ChannelError> {
        // A token refused or unobtainable keeps the message waiting in the outbox (the operator
        // logs in again); it never fails the message.
        let token = self
            .source
            .access_token()
            .await
            .map_err(|e| ChannelError::temporary(format!("OAuth token for {}: {e}", self.user)))?;
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
    let setup = |m: String| ChannelError::permanent(m);
    let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
        .port(s.port)
        .timeout(Some(Duration::from_secs(s.timeout_secs)))
        .pool_config(PoolConfig::new().max_size(concurrency.clamp(1, 256) as u32));
    if s.tls != TlsMode::None {
        let mut pb = TlsParametersBuilder::new(s.host.clone());
        if let Some(ca) = &s.ca_file {
            let pem = std::fs::read(ca).map_err(|e| setup(format!("{}: {e}", ca.display())))?;
            let cert = Certificate::from_pem(&pem).map_err(|e| setup(format!("{}: {e}", ca.display())))?;
            pb = pb.add_root_certificate(cert);
        }
        let params = pb.build_rustls().map_err(|e| setup(format!("outbound.smtp TLS: {e}")))?;
        b = b.tls(if s.tls == TlsMode::Tls { Tls::Wrapper(params) } else { Tls::Required(params) });
    }
    Ok(b)
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
            TransportKind::Smtp => {
                let s = cfg.smtp.as_ref().ok_or_else(|| setup("outbound.smtp missing".into()))?;
                let mut b = smtp_builder(s, cfg.concurrency)?;
                if let (Some(o), Some(user)) = (&s.oauth, &s.user) {
                    let env = |k: &str| std::env::var(k).ok();
                    let checked =
                        o.check(user, &env).map_err(|e| setup(format!("outbound.smtp.oauth: {}", e.join("; "))))?;
                    return Ok(Transport::SmtpOAuth(Box::new(OAuthSmtp {
                        builder: b,
                        user: user.clone(),
                        source: super::oauth::shared(&checked, store),
                        current: tokio::sync::Mutex::new(None),
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
            Transport::SmtpOAuth(o) => o.transport().await?,
            Transport::File(_) => return Ok(()),
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
                let t = o.transport().await?;
                t.send_raw(&env, raw).await.map(|_| ()).map_err(|e| {
                    // A refused token (535, or lettre's "does not expect a challenge" when the
                    // server answers XOAUTH2 with its 334 error challenge): forget the token and
                    // let the message wait for a new one.
                    let code = e.status().map(|c| c.to_string()).unwrap_or_default();
                    if e.is_client() || code.starts_with("53") {
                        o.source.invalidate();
                        ChannelError::temporary(format!("SMTP AUTH XOAUTH2 as {} refused: {e}", o.user))
                    } else if e.is_permanent() {
                        ChannelError::permanent(e.to_string())
                    } else {
                        ChannelError::temporary(e.to_string())
                    }
                })
            }
            Transport::File(dir) => {
                let safe: String =
                    name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '_' }).collect();
                let tmp = dir.join(format!(".{safe}.tmp"));
                let dst = dir.join(format!("{safe}.eml"));
                let io = |e: std::io::Error| ChannelError::temporary(format!("{}: {e}", dst.display()));
                tokio::fs::write(&tmp, raw).await.map_err(io)?;
                tokio::fs::rename(&tmp, &dst).await.map_err(io)?;
                Ok(())
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
