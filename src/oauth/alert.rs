//! When the operators hear about a credential, decided without I/O: at the first authentication
//! failure of an outage, and `warn_days` before the client secret's end date (once per date).

/// What an operator alert is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertKind {
    /// The provider or the server refused the credential (revoked grant, wrong secret, missing
    /// permission); mail waits until it is fixed.
    AuthFailed,
    /// The client secret ends soon.
    SecretExpiring,
}

impl AlertKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertKind::AuthFailed => "auth_failed",
            AlertKind::SecretExpiring => "secret_expiring",
        }
    }
}

/// The moment a secret whose last valid day is `last_day` stops working: the end of that day
/// (midnight UTC after it).
pub fn secret_end_ms(last_day: chrono::NaiveDate) -> i64 {
    last_day.and_hms_opt(0, 0, 0).map(|t| t.and_utc().timestamp_millis() + 86_400_000).unwrap_or(0)
}

/// Seconds from `now_ms` until the secret ends (negative once it has).
pub fn secret_seconds_left(last_day: chrono::NaiveDate, now_ms: i64) -> i64 {
    (secret_end_ms(last_day) - now_ms).div_euclid(1000)
}

/// Whether the early warning is due at `now_ms`: within `warn_days` of the end, or past it.
pub fn secret_warning_due(last_day: chrono::NaiveDate, warn_days: u32, now_ms: i64) -> bool {
    secret_seconds_left(last_day, now_ms) <= i64::from(warn_days) * 86_400
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_warning_comes_warn_days_before_the_end() {
        let day = chrono::NaiveDate::from_ymd_opt(2027, 6, 30).unwrap();
        let end = secret_end_ms(day);
        assert_eq!((secret_seconds_left(day, end - 1000), secret_seconds_left(day, end)), (1, 0));
        assert!(!secret_warning_due(day, 14, end - 15 * 86_400_000));
        assert!(secret_warning_due(day, 14, end - 14 * 86_400_000));
        assert!(secret_warning_due(day, 14, end - 10 * 86_400_000));
        assert!(secret_warning_due(day, 0, end + 1), "an ended secret is always worth a warning");
        assert_eq!(secret_seconds_left(day, end - 10 * 86_400_000 - 1), 10 * 86_400);
    }
}
