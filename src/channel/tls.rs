//! rustls client configuration shared by IMAP and SMTP: the web PKI roots plus an optional PEM
//! file of extra CAs (private CAs, test servers).

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::{CertificateDer, pem::PemObject};
use tokio_rustls::rustls;

use super::ChannelError;

/// A bad CA file is a [`ChannelError::Permanent`] setup error.
pub fn client_config(ca_file: Option<&Path>) -> Result<Arc<rustls::ClientConfig>, ChannelError> {
    let bad = |e: &dyn std::fmt::Display| {
        ChannelError::permanent(format!("{}: {e}", ca_file.unwrap_or(Path::new("")).display()))
    };
    let mut roots = rustls::RootCertStore::empty();
    roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(ca) = ca_file {
        for cert in CertificateDer::pem_file_iter(ca).map_err(|e| bad(&e))? {
            let cert = cert.map_err(|e| bad(&e))?;
            roots.add(cert).map_err(|e| bad(&e))?;
        }
    }
    let cfg = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| ChannelError::permanent(format!("TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(cfg))
}
