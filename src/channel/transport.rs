//! Outbound transports: SMTP (lettre) and a directory of `.eml` files. Only the outbox worker
//! calls them (style rule: only the outbox sends).

use std::path::PathBuf;
use std::time::Duration;

use lettre::address::Envelope;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, Tls, TlsParametersBuilder};
use lettre::{Address, AsyncSmtpTransport, AsyncTransport, Tokio1Executor};

use super::ChannelError;
use crate::config::{OutboundConfig, TlsMode, TransportKind};

pub enum Transport {
    Smtp(Box<AsyncSmtpTransport<Tokio1Executor>>),
    File(PathBuf),
}

impl Transport {
    /// Errors are setup errors ([`ChannelError::Permanent`]).
    pub fn from_config(cfg: &OutboundConfig) -> Result<Self, ChannelError> {
        let setup = |m: String| ChannelError::permanent(m);
        match cfg.transport {
            TransportKind::File => {
                std::fs::create_dir_all(&cfg.directory)
                    .map_err(|e| setup(format!("outbound.directory {}: {e}", cfg.directory.display())))?;
                Ok(Transport::File(cfg.directory.clone()))
            }
            TransportKind::Smtp => {
                let s = cfg.smtp.as_ref().ok_or_else(|| setup("outbound.smtp missing".into()))?;
                let mut b = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)
                    .port(s.port)
                    .timeout(Some(Duration::from_secs(s.timeout_secs)));
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
                if let (Some(user), Some(var)) = (&s.user, &s.password_env) {
                    let pw = std::env::var(var).map_err(|_| setup(format!("environment variable {var} is not set")))?;
                    b = b.credentials(Credentials::new(user.clone(), pw));
                }
                Ok(Transport::Smtp(Box::new(b.build())))
            }
        }
    }

    /// Sends `raw` from `sender` to `recipients`. `name` names the file for the file transport.
    pub async fn send(&self, name: &str, sender: &str, recipients: &[String], raw: &[u8]) -> Result<(), ChannelError> {
        match self {
            Transport::Smtp(t) => {
                let perm = ChannelError::permanent;
                let from: Address = sender.parse().map_err(|e| perm(format!("sender {sender}: {e}")))?;
                let to = recipients
                    .iter()
                    .map(|r| r.parse::<Address>().map_err(|e| perm(format!("recipient {r}: {e}"))))
                    .collect::<Result<Vec<_>, _>>()?;
                let env = Envelope::new(Some(from), to).map_err(|e| perm(e.to_string()))?;
                t.send_raw(&env, raw).await.map(|_| ()).map_err(|e| {
                    // SMTP 5xx: the server refuses for good; 4xx, network and timeouts pass.
                    if e.is_permanent() {
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
