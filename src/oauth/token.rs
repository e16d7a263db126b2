//! Token answers and the decisions about them, without I/O: reading a provider's JSON (a token,
//! a device-code start, or the provider's own error), and when a cached access token is due for
//! renewal. Microsoft answers errors as `{error, error_description: "AADSTS…", error_codes, …}`,
//! Google as `{error, error_description}`; both are kept word for word for the operator.

use serde::Deserialize;

use crate::config::Secret;

/// The provider refused: its HTTP status, error code and own description.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{error}: {description} (HTTP {status})")]
pub struct ProviderError {
    pub status: u16,
    pub error: String,
    pub description: String,
}

impl ProviderError {
    /// Whether the grant itself is gone (revoked, expired, password reset): only a new
    /// `loket oauth login` helps.
    pub fn grant_is_gone(&self) -> bool {
        self.error == "invalid_grant"
    }

    /// Whether waiting may help (the provider's own trouble or throttling).
    pub fn is_temporary(&self) -> bool {
        self.status >= 500 || self.status == 429 || self.error == "temporarily_unavailable"
    }
}

/// What a token endpoint answered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Answer {
    #[error(transparent)]
    Refused(#[from] ProviderError),
    #[error("the token endpoint answered HTTP {status} without an OAuth error: {body}")]
    Malformed { status: u16, body: String },
}

/// A granted token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Granted {
    pub access_token: Secret,
    /// Seconds the access token lives.
    pub expires_in: i64,
    /// A new refresh token, when the provider sent one (Microsoft rotates; Google usually
    /// sends none and the old one stays valid).
    pub refresh_token: Option<Secret>,
    /// The scopes granted, when the provider says.
    pub scope: Option<String>,
}

#[derive(Deserialize)]
struct RawToken {
    access_token: String,
    #[serde(default)]
    expires_in: Option<serde_json::Value>,
    #[serde(default)]
    refresh_token: Option<String>,
    #[serde(default)]
    scope: Option<String>,
}

#[derive(Deserialize)]
struct RawError {
    error: String,
    #[serde(default)]
    error_description: Option<String>,
}

fn snippet(body: &str) -> String {
    body.chars().take(300).collect()
}

fn refusal(status: u16, body: &str) -> Answer {
    match serde_json::from_str::<RawError>(body) {
        Ok(e) => Answer::Refused(ProviderError {
            status,
            error: e.error,
            description: e.error_description.unwrap_or_default().lines().next().unwrap_or("").to_string(),
        }),
        Err(_) => Answer::Malformed { status, body: snippet(body) },
    }
}

/// Reads a token endpoint's answer.
pub fn parse_token(status: u16, body: &str) -> Result<Granted, Answer> {
    if !(200..300).contains(&status) {
        return Err(refusal(status, body));
    }
    let raw: RawToken = serde_json::from_str(body).map_err(|_| refusal(status, body))?;
    // Some providers send expires_in as a string; a missing one means the usual hour.
    let expires_in = match raw.expires_in {
        Some(serde_json::Value::Number(n)) => n.as_i64().unwrap_or(3600),
        Some(serde_json::Value::String(s)) => s.parse().unwrap_or(3600),
        _ => 3600,
    };
    Ok(Granted {
        access_token: Secret(raw.access_token),
        expires_in: expires_in.clamp(1, 86_400),
        refresh_token: raw.refresh_token.filter(|t| !t.is_empty()).map(Secret),
        scope: raw.scope,
    })
}

/// The start of a device-code login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceStart {
    pub device_code: Secret,
    pub user_code: String,
    /// Where the user enters the code (Microsoft `verification_uri`, Google `verification_url`).
    pub verification_uri: String,
    pub expires_in: i64,
    /// Seconds between polls.
    pub interval: i64,
    /// The provider's own instruction, if it sent one.
    pub message: Option<String>,
}

#[derive(Deserialize)]
struct RawDevice {
    device_code: String,
    user_code: String,
    #[serde(default)]
    verification_uri: Option<String>,
    #[serde(default)]
    verification_url: Option<String>,
    #[serde(default)]
    expires_in: Option<i64>,
    #[serde(default)]
    interval: Option<i64>,
    #[serde(default)]
    message: Option<String>,
}

/// Reads a device authorization answer.
pub fn parse_device(status: u16, body: &str) -> Result<DeviceStart, Answer> {
    if !(200..300).contains(&status) {
        return Err(refusal(status, body));
    }
    let raw: RawDevice = serde_json::from_str(body).map_err(|_| refusal(status, body))?;
    let uri = raw.verification_uri.or(raw.verification_url).ok_or_else(|| Answer::Malformed {
        status,
        body: "device authorization answer without verification_uri".into(),
    })?;
    Ok(DeviceStart {
        device_code: Secret(raw.device_code),
        user_code: raw.user_code,
        verification_uri: uri,
        expires_in: raw.expires_in.unwrap_or(900).clamp(1, 3600),
        interval: raw.interval.unwrap_or(5).clamp(1, 60),
        message: raw.message,
    })
}

/// One poll of the token endpoint during a device-code login.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DevicePoll {
    /// The user has not finished yet: poll again after the interval.
    Pending,
    /// Polling too fast: add 5 seconds to the interval (RFC 8628 §3.5).
    SlowDown,
    Granted(Granted),
    /// Denied, expired, or another refusal: stop.
    Failed(Answer),
}

pub fn parse_device_poll(status: u16, body: &str) -> DevicePoll {
    match parse_token(status, body) {
        Ok(g) => DevicePoll::Granted(g),
        Err(Answer::Refused(e)) if e.error == "authorization_pending" => DevicePoll::Pending,
        Err(Answer::Refused(e)) if e.error == "slow_down" => DevicePoll::SlowDown,
        Err(e) => DevicePoll::Failed(e),
    }
}

/// Whether an access token obtained at `obtained_ms` and expiring at `expires_ms` should be
/// renewed at `now_ms`: five minutes before it expires, or half-way through a shorter life.
pub fn renewal_due(obtained_ms: i64, expires_ms: i64, now_ms: i64) -> bool {
    let margin = ((expires_ms - obtained_ms) / 2).clamp(0, 300_000);
    now_ms >= expires_ms - margin
}

/// What a JWT-shaped access token (Microsoft's) says about itself, read without checking its
/// signature (only for `loket oauth test`'s diagnosis): its audience and its permissions (`roles`
/// of an app token, `scp` of a delegated one). `None` for an opaque token (Google's).
pub fn jwt_claims(token: &str) -> Option<(String, Vec<String>)> {
    use base64::Engine;
    let payload = token.split('.').nth(1)?;
    let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(payload.trim_end_matches('=')).ok()?;
    let v: serde_json::Value = serde_json::from_slice(&bytes).ok()?;
    let aud = v.get("aud").and_then(|a| a.as_str()).unwrap_or("").to_string();
    let mut perms: Vec<String> = v
        .get("roles")
        .and_then(|r| r.as_array())
        .map(|a| a.iter().filter_map(|x| x.as_str().map(String::from)).collect())
        .unwrap_or_default();
    if let Some(scp) = v.get("scp").and_then(|s| s.as_str()) {
        perms.extend(scp.split_whitespace().map(String::from));
    }
    Some((aud, perms))
}

/// Whether the permissions name IMAP (`imap`), SMTP (`smtp`) or Graph mailbox (`graph`:
/// `Mail.ReadWrite`, app-only or delegated, or its `.Shared` form) access.
pub fn grants(perms: &[String], service: &str) -> bool {
    let wanted: &[&str] = match service {
        "imap" => &["IMAP.AccessAsApp", "IMAP.AccessAsUser.All"],
        "graph" => &["Mail.ReadWrite", "Mail.ReadWrite.Shared"],
        _ => &["SMTP.SendAsApp", "SMTP.Send"],
    };
    perms.iter().any(|p| wanted.iter().any(|w| p == w || p.ends_with(&format!("/{w}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_tokens_and_both_providers_errors() {
        let g = parse_token(
            200,
            r#"{"token_type":"Bearer","expires_in":3599,"access_token":"eyJ0","refresh_token":"1.AQ"}"#,
        )
        .unwrap();
        assert_eq!((g.access_token.0.as_str(), g.expires_in), ("eyJ0", 3599));
        assert_eq!(g.refresh_token, Some(Secret("1.AQ".into())));
        let ms = r#"{"error":"invalid_grant","error_description":"AADSTS50173: The provided grant has expired due to it being revoked.\r\nTrace ID: x","error_codes":[50173]}"#;
        let Err(Answer::Refused(e)) = parse_token(400, ms) else { panic!() };
        assert!(e.grant_is_gone() && !e.is_temporary());
        assert_eq!(
            e.to_string(),
            "invalid_grant: AADSTS50173: The provided grant has expired due to it being revoked. (HTTP 400)"
        );
        let google = r#"{"error":"invalid_grant","error_description":"Token has been expired or revoked."}"#;
        assert!(
            matches!(parse_token(400, google), Err(Answer::Refused(e)) if e.description == "Token has been expired or revoked.")
        );
        assert!(matches!(parse_token(502, "<html>bad gateway</html>"), Err(Answer::Malformed { status: 502, .. })));
        assert!(matches!(parse_token(200, "{}"), Err(Answer::Malformed { .. })));
    }

    #[test]
    fn device_flow_answers() {
        let d = parse_device(200, r#"{"device_code":"dc","user_code":"ABCD-EFGH","verification_url":"https://www.google.com/device","expires_in":1800,"interval":5}"#).unwrap();
        assert_eq!(
            (d.user_code.as_str(), d.verification_uri.as_str(), d.interval),
            ("ABCD-EFGH", "https://www.google.com/device", 5)
        );
        assert_eq!(parse_device_poll(400, r#"{"error":"authorization_pending"}"#), DevicePoll::Pending);
        assert_eq!(
            parse_device_poll(428, r#"{"error":"authorization_pending","error_description":"Precondition Required"}"#),
            DevicePoll::Pending
        );
        assert_eq!(parse_device_poll(400, r#"{"error":"slow_down"}"#), DevicePoll::SlowDown);
        assert!(matches!(parse_device_poll(400, r#"{"error":"expired_token"}"#), DevicePoll::Failed(_)));
        assert!(
            matches!(parse_device_poll(200, r#"{"access_token":"a","expires_in":"60"}"#), DevicePoll::Granted(g) if g.expires_in == 60)
        );
    }

    #[test]
    fn reads_what_a_microsoft_token_claims() {
        use base64::Engine;
        let enc = |j: &str| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(j);
        let app = format!(
            "{}.{}.sig",
            enc("{}"),
            enc(r#"{"aud":"https://outlook.office.com","roles":["IMAP.AccessAsApp"]}"#)
        );
        let (aud, perms) = jwt_claims(&app).unwrap();
        assert_eq!(aud, "https://outlook.office.com");
        assert!(grants(&perms, "imap") && !grants(&perms, "smtp"));
        let graph = format!("{}.{}.sig", enc("{}"), enc(r#"{"aud":"https://graph.microsoft.com","scp":"Mail.Read"}"#));
        assert!(!grants(&jwt_claims(&graph).unwrap().1, "imap"));
        // Read-only mail, or a permission that merely contains the name, is not enough for a Graph inbox.
        assert!(!grants(&jwt_claims(&graph).unwrap().1, "graph"));
        assert!(!grants(&["Mail.ReadWriteX".to_string()], "graph"));
        assert!(grants(&["Mail.ReadWrite".to_string()], "graph"));
        assert!(grants(&["Mail.ReadWrite.Shared".to_string(), "Mail.Send".to_string()], "graph"));
        assert!(jwt_claims("ya29.opaque").is_none());
    }

    #[test]
    fn renewal_comes_before_expiry() {
        let hour = 3_600_000;
        assert!(!renewal_due(0, hour, hour - 300_001));
        assert!(renewal_due(0, hour, hour - 300_000));
        assert!(renewal_due(0, 10_000, 5_000), "short lives renew half-way");
        assert!(!renewal_due(0, 10_000, 4_999));
        assert!(renewal_due(0, hour, hour + 1));
    }
}
