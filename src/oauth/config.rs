//! `[…imap.oauth]` and `[outbound.smtp.oauth]`: how an inbox or the relay gets a bearer token.
//! Provider presets fill the token endpoint, the scope and the IMAP/SMTP hosts, so that the
//! combinations that fail at the provider (a Graph scope on IMAP, a wrong resource host) cannot be
//! written; `endpoint` only moves the provider's base URL (tests, sovereign clouds).
//! [`OAuthConfig::check`] turns the file's block into an [`OAuth`] with its secrets from the
//! environment, or into every problem at once.

use serde::Deserialize;

use crate::config::Secret;

/// The identity provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// Microsoft 365 / Exchange Online (Microsoft identity platform v2.0).
    Microsoft365,
    /// Google Workspace / Gmail.
    Google,
}

/// How Loket obtains access tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Flow {
    /// App-only (Microsoft `IMAP.AccessAsApp` / `SMTP.SendAsApp`): client id and secret, no
    /// refresh token, nothing a user's password reset revokes. The recommended mode for a daemon.
    #[default]
    ClientCredentials,
    /// Delegated: a refresh token obtained once with `loket oauth login` (device code), kept
    /// encrypted in the store and replaced by every rotated one.
    RefreshToken,
}

/// The SASL mechanism that carries the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Mechanism {
    /// Google's and Microsoft's `XOAUTH2` (IMAP and SMTP).
    #[default]
    Xoauth2,
    /// RFC 7628 `OAUTHBEARER` (IMAP, and SMTP on connections Loket logs in itself).
    Oauthbearer,
}

impl Mechanism {
    /// The SASL name, as in `AUTHENTICATE XOAUTH2`.
    pub fn sasl_name(self) -> &'static str {
        match self {
            Mechanism::Xoauth2 => "XOAUTH2",
            Mechanism::Oauthbearer => "OAUTHBEARER",
        }
    }
}

/// The block as written in `loket.toml`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OAuthConfig {
    /// `microsoft365` or `google`.
    pub provider: Provider,
    /// `client-credentials` (default) or `refresh-token`.
    #[serde(default)]
    pub flow: Flow,
    /// `xoauth2` (default) or `oauthbearer`.
    #[serde(default)]
    pub mechanism: Mechanism,
    /// Microsoft: the directory (tenant) id or a verified domain (`contoso.onmicrosoft.com`).
    #[serde(default)]
    pub tenant: Option<String>,
    /// The application (client) id of the app registration.
    pub client_id: String,
    /// Environment variable holding the client secret (required for client credentials and for
    /// Google; a Microsoft public client in refresh-token mode has none).
    #[serde(default)]
    pub client_secret_env: Option<String>,
    /// The day the client secret expires (`YYYY-MM-DD`, as the app registration shows it):
    /// `/metrics` counts down to it and the operators are warned `warn_days` before.
    #[serde(default)]
    pub client_secret_expires: Option<String>,
    /// Days before an expiry (client secret, refresh token) that the operators are warned.
    #[serde(default = "default_warn_days")]
    pub warn_days: u32,
    /// Environment variable holding the 32-byte key (64 hex digits) that encrypts the stored
    /// refresh token (refresh-token mode).
    #[serde(default = "default_key_env")]
    pub key_env: String,
    /// Base URL of the provider's endpoints instead of the preset's (tests, national clouds).
    #[serde(default)]
    pub endpoint: Option<String>,
}

fn default_warn_days() -> u32 {
    14
}
fn default_key_env() -> String {
    "LOKET_OAUTH_KEY".into()
}

impl Provider {
    /// The preset's base URL of the token endpoints.
    pub fn default_endpoint(self) -> &'static str {
        match self {
            Provider::Microsoft365 => "https://login.microsoftonline.com",
            Provider::Google => "https://oauth2.googleapis.com",
        }
    }

    /// The preset's IMAP host (port 993, implicit TLS).
    pub fn imap_host(self) -> &'static str {
        match self {
            Provider::Microsoft365 => "outlook.office365.com",
            Provider::Google => "imap.gmail.com",
        }
    }

    /// How many messages one mailbox may send a minute through the provider's SMTP, where it
    /// documents a per-minute cap (Exchange Online: 30); the default of `outbound.sender_per_minute`.
    pub fn sends_per_minute(self) -> Option<u32> {
        match self {
            Provider::Microsoft365 => Some(30),
            // Gmail's caps are per day (2,000 for Workspace), which a rate per minute cannot keep.
            Provider::Google => None,
        }
    }

    /// The preset's SMTP submission host (port 587, STARTTLS).
    pub fn smtp_host(self) -> &'static str {
        match self {
            Provider::Microsoft365 => "smtp.office365.com",
            Provider::Google => "smtp.gmail.com",
        }
    }

    /// The scope a flow asks for. Client credentials ask for the resource's `.default` (the app's
    /// granted roles, `IMAP.AccessAsApp` and `SMTP.SendAsApp`); delegated Microsoft tokens name the
    /// IMAP and SMTP permissions of the same resource plus `offline_access` (for a refresh token).
    pub fn scope(self, flow: Flow) -> &'static str {
        match (self, flow) {
            (Provider::Microsoft365, Flow::ClientCredentials) => "https://outlook.office365.com/.default",
            (Provider::Microsoft365, Flow::RefreshToken) => {
                "https://outlook.office.com/IMAP.AccessAsUser.All https://outlook.office.com/SMTP.Send offline_access"
            }
            (Provider::Google, _) => "https://mail.google.com/",
        }
    }
}

/// Microsoft Graph's resource: its tokens' audience and the base of its scopes.
pub const GRAPH_RESOURCE: &str = "https://graph.microsoft.com";

/// The checked OAuth block of a Graph inbox (`[desk.inbox.graph.oauth]`) for mailbox `user`: a
/// Microsoft 365 app, asking for Graph's own scopes (the app's `Mail.ReadWrite` and `Mail.Send`
/// roles with client credentials; the same delegated permissions with a refresh token).
pub fn graph_oauth(
    o: &OAuthConfig,
    endpoint: Option<&str>,
    user: &str,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<OAuth, Vec<String>> {
    let mut problems = Vec::new();
    if o.provider != Provider::Microsoft365 {
        problems.push("oauth.provider: Graph is Microsoft 365's (`microsoft365`)".to_string());
    }
    if let Some(e) = endpoint {
        let e = e.trim_end_matches('/');
        if !(e.starts_with("https://") || e.starts_with("http://127.0.0.1") || e.starts_with("http://localhost")) {
            problems.push(format!("endpoint: `{e}` must be an https URL (http only on loopback)"));
        }
    }
    let mut oauth = o.check(user, env).map_err(|e| {
        problems.extend(e.into_iter().map(|e| format!("oauth.{e}")));
        std::mem::take(&mut problems)
    })?;
    if !problems.is_empty() {
        return Err(problems);
    }
    oauth.graph = true;
    oauth.scope = match oauth.flow {
        Flow::ClientCredentials => format!("{GRAPH_RESOURCE}/.default"),
        Flow::RefreshToken => {
            format!("{GRAPH_RESOURCE}/Mail.ReadWrite {GRAPH_RESOURCE}/Mail.Send offline_access")
        }
    };
    Ok(oauth)
}

/// A checked OAuth block: everything a token request needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OAuth {
    pub provider: Provider,
    pub flow: Flow,
    pub mechanism: Mechanism,
    /// The mailbox (SASL user).
    pub user: String,
    pub client_id: String,
    pub client_secret: Option<Secret>,
    /// The client secret's last valid day.
    pub secret_expires: Option<chrono::NaiveDate>,
    pub warn_days: u32,
    pub token_url: String,
    /// The device authorization endpoint (`loket oauth login`).
    pub device_url: String,
    pub scope: String,
    /// Encrypts the stored refresh token (refresh-token mode only).
    pub key: Option<Secret>,
    /// The token is for Microsoft Graph, not for IMAP and SMTP (another audience and scope).
    pub graph: bool,
}

impl OAuth {
    /// Identifies the credential across inboxes, the relay and instances: the same app and mailbox
    /// share one cached access token and one stored refresh token.
    pub fn credential_key(&self) -> String {
        let graph = if self.graph { "|graph" } else { "" };
        format!("{}|{}|{}{graph}", self.token_url, self.client_id, self.user.to_lowercase())
    }
}

impl OAuthConfig {
    /// Checks the block for mailbox `user`; `env` looks up environment variables. Problems are
    /// `field: what is wrong`, for the caller to prefix with its key.
    pub fn check(&self, user: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<OAuth, Vec<String>> {
        let mut problems = Vec::new();
        let base = self.endpoint.as_deref().unwrap_or(self.provider.default_endpoint()).trim_end_matches('/');
        if !(base.starts_with("https://")
            || base.starts_with("http://127.0.0.1")
            || base.starts_with("http://localhost"))
        {
            problems.push(format!("endpoint: `{base}` must be an https URL (http only on loopback)"));
        }
        if user.trim().is_empty() || !user.contains('@') {
            problems.push(format!("user: `{user}` must be the mailbox's address"));
        }
        if self.client_id.trim().is_empty() {
            problems.push("client_id: must not be empty".into());
        }
        let (token_url, device_url) = match self.provider {
            Provider::Microsoft365 => {
                let tenant = self.tenant.as_deref().unwrap_or("").trim();
                let ok = !tenant.is_empty()
                    && tenant.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_'));
                if !ok {
                    problems.push("tenant: required for microsoft365: the directory (tenant) id or domain".into());
                }
                if self.flow == Flow::ClientCredentials && matches!(tenant, "common" | "organizations" | "consumers") {
                    problems.push(format!("tenant: client credentials need the tenant itself, not `{tenant}`"));
                }
                (format!("{base}/{tenant}/oauth2/v2.0/token"), format!("{base}/{tenant}/oauth2/v2.0/devicecode"))
            }
            Provider::Google => {
                if self.flow == Flow::ClientCredentials {
                    problems.push(
                        "flow: Google has no client-credentials grant for mail; use `refresh-token` (a service \
                         account with domain-wide delegation is not supported yet)"
                            .into(),
                    );
                }
                if self.tenant.is_some() {
                    problems.push("tenant: only for microsoft365".into());
                }
                (format!("{base}/token"), format!("{base}/device/code"))
            }
        };
        let secret_needed = self.flow == Flow::ClientCredentials || self.provider == Provider::Google;
        let client_secret = match &self.client_secret_env {
            Some(var) => match env(var) {
                Some(v) if !v.trim().is_empty() => Some(Secret(v.trim().to_string())),
                _ => {
                    problems.push(format!("client_secret_env: environment variable `{var}` is not set"));
                    None
                }
            },
            None if secret_needed => {
                problems.push("client_secret_env: required for this provider and flow".into());
                None
            }
            None => None,
        };
        let secret_expires = self.client_secret_expires.as_deref().and_then(|d| {
            chrono::NaiveDate::parse_from_str(d.trim(), "%Y-%m-%d")
                .map_err(|_| problems.push(format!("client_secret_expires: `{d}` is not a date (YYYY-MM-DD)")))
                .ok()
        });
        let key = match self.flow {
            Flow::ClientCredentials => None,
            Flow::RefreshToken => match env(&self.key_env) {
                Some(k) if super::crypto::parse_key(&k).is_some() => Some(Secret(k.trim().to_string())),
                Some(_) => {
                    problems.push(format!("key_env: `{}` must hold 64 hex digits (32 bytes)", self.key_env));
                    None
                }
                None => {
                    problems.push(format!(
                        "key_env: environment variable `{}` is not set (the key that encrypts the stored refresh \
                         token; make one with `openssl rand -hex 32`)",
                        self.key_env
                    ));
                    None
                }
            },
        };
        if !problems.is_empty() {
            return Err(problems);
        }
        Ok(OAuth {
            provider: self.provider,
            flow: self.flow,
            mechanism: self.mechanism,
            user: user.trim().to_string(),
            client_id: self.client_id.trim().to_string(),
            client_secret,
            secret_expires,
            warn_days: self.warn_days,
            token_url,
            device_url,
            scope: self.provider.scope(self.flow).to_string(),
            key,
            graph: false,
        })
    }
}

/// Checks an inbox's `[imap]` login: a password or an `oauth` block, not both; fills the host
/// from the provider's preset when it is left out. Problems start with the key under `imap`.
pub fn check_imap(imap: &mut crate::config::ImapConfig, env: &dyn Fn(&str) -> Option<String>) -> Vec<String> {
    let mut problems = Vec::new();
    match (&imap.password_env, &imap.oauth) {
        (Some(_), Some(_)) => problems.push("password_env: give `password_env` or `[oauth]`, not both".into()),
        (None, None) => problems.push("password_env: required (or an `[oauth]` block)".into()),
        (Some(var), None) if env(var).is_none() => {
            problems.push(format!("password_env: environment variable `{var}` is not set"))
        }
        _ => {}
    }
    if let Some(o) = &imap.oauth {
        if imap.host.trim().is_empty() {
            imap.host = o.provider.imap_host().into();
        }
        if let Err(errs) = o.check(&imap.user, env) {
            problems.extend(errs.into_iter().map(|e| format!("oauth.{e}")));
        }
    }
    if imap.host.trim().is_empty() {
        problems.push("host: required".into());
    }
    problems
}

/// Checks `[outbound.smtp]`'s OAuth block (when the relay is `used`): `user` names the mailbox,
/// no password beside it, XOAUTH2 only; fills the host from the preset. Problems carry their key.
pub fn check_smtp(
    smtp: &mut crate::config::SmtpConfig,
    used: bool,
    env: &dyn Fn(&str) -> Option<String>,
) -> Vec<String> {
    let mut problems = Vec::new();
    if let Some(o) = &smtp.oauth {
        if smtp.host.trim().is_empty() {
            smtp.host = o.provider.smtp_host().into();
        }
        if smtp.password_env.is_some() {
            problems.push("outbound.smtp.password_env: give `password_env` or `[oauth]`, not both".into());
        }
        match &smtp.user {
            None => problems.push("outbound.smtp.user: required with `[oauth]` (the mailbox's address)".into()),
            Some(user) if used => {
                if let Err(errs) = o.check(user, env) {
                    problems.extend(errs.into_iter().map(|e| format!("outbound.smtp.oauth.{e}")));
                }
            }
            Some(_) => {}
        }
    }
    if smtp.host.trim().is_empty() {
        problems.push("outbound.smtp.host: required".into());
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(toml_text: &str) -> OAuthConfig {
        toml::from_str(toml_text).unwrap()
    }

    #[test]
    fn microsoft_preset_fills_endpoint_and_scope() {
        let c = block(
            "provider = \"microsoft365\"\ntenant = \"contoso.onmicrosoft.com\"\nclient_id = \"app\"\nclient_secret_env = \"S\"\n",
        );
        let o = c.check("desk@contoso.com", &|k| (k == "S").then(|| "s3cr3t".into())).unwrap();
        assert_eq!(o.token_url, "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token");
        assert_eq!(o.scope, "https://outlook.office365.com/.default");
        assert_eq!(o.mechanism, Mechanism::Xoauth2);
        assert_eq!(Provider::Microsoft365.imap_host(), "outlook.office365.com");
        assert!(!format!("{o:?}").contains("s3cr3t"), "the secret stays out of Debug");
    }

    #[test]
    fn every_problem_is_named() {
        let c = block(
            "provider = \"google\"\nclient_id = \"\"\nclient_secret_env = \"UNSET\"\n\
             client_secret_expires = \"31-12-2027\"\nendpoint = \"http://idp.example\"\ntenant = \"x\"\n",
        );
        let all = c.check("nobody", &|_| None).unwrap_err().join("\n");
        for needle in [
            "endpoint: `http://idp.example` must be an https URL",
            "user: `nobody`",
            "client_id",
            "flow: Google has no client-credentials grant",
            "tenant: only for microsoft365",
            "environment variable `UNSET` is not set",
            "client_secret_expires: `31-12-2027`",
        ] {
            assert!(all.contains(needle), "missing {needle} in {all}");
        }
    }

    #[test]
    fn refresh_token_mode_needs_the_key() {
        let c = block("provider = \"microsoft365\"\nflow = \"refresh-token\"\ntenant = \"t\"\nclient_id = \"app\"\n");
        let all = c.check("a@b.test", &|_| None).unwrap_err().join("\n");
        assert!(all.contains("key_env: environment variable `LOKET_OAUTH_KEY` is not set"), "{all}");
        let key = "00".repeat(32);
        let o = c.check("a@b.test", &|k| (k == "LOKET_OAUTH_KEY").then(|| key.clone())).unwrap();
        assert!(o.scope.contains("IMAP.AccessAsUser.All") && o.scope.contains("offline_access"));
        assert!(o.client_secret.is_none(), "a public client has no secret");
    }
}
