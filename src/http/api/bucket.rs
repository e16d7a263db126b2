//! The API's rate limit, pure: a token bucket per key. It holds at most `burst` requests and
//! gains `per_minute` a minute; a request takes one, and a request that finds none is refused
//! with the seconds until one is there (`Retry-After`). `now` (ms) is an argument.

/// The limit every key gets (`limits.api_requests_per_minute`, `limits.api_burst`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Budget {
    pub per_minute: u32,
    pub burst: u32,
}

/// One key's bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct Bucket {
    /// Requests available now (fractions accumulate between requests).
    tokens: f64,
    /// When `tokens` was last brought up to date (ms).
    at: i64,
}

impl Bucket {
    /// A full bucket at `now`.
    pub fn full(budget: Budget, now: i64) -> Self {
        Bucket { tokens: f64::from(budget.burst), at: now }
    }

    /// Takes one request at `now`: Ok, or Err with the whole seconds to wait (at least 1).
    pub fn take(&mut self, budget: Budget, now: i64) -> Result<(), u64> {
        let per_ms = f64::from(budget.per_minute) / 60_000.0;
        let elapsed = (now - self.at).max(0) as f64;
        self.tokens = (self.tokens + elapsed * per_ms).min(f64::from(budget.burst));
        self.at = now.max(self.at);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            return Ok(());
        }
        if per_ms <= 0.0 {
            return Err(60);
        }
        let wait_ms = (1.0 - self.tokens) / per_ms;
        Err(((wait_ms / 1000.0).ceil() as u64).max(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Budget = Budget { per_minute: 60, burst: 5 };

    #[test]
    fn a_burst_then_one_a_second() {
        let mut b = Bucket::full(B, 0);
        for _ in 0..5 {
            assert_eq!(b.take(B, 0), Ok(()));
        }
        assert_eq!(b.take(B, 0), Err(1), "empty: one more in a second");
        assert_eq!(b.take(B, 500), Err(1));
        assert_eq!(b.take(B, 1_000), Ok(()));
        assert!(b.take(B, 1_000).is_err());
        // A long pause refills up to the burst, never beyond it.
        let mut allowed = 0;
        for _ in 0..20 {
            if b.take(B, 3_600_000).is_ok() {
                allowed += 1;
            }
        }
        assert_eq!(allowed, 5);
    }

    #[test]
    fn allowed_over_a_period_is_the_burst_plus_the_refill() {
        let budget = Budget { per_minute: 120, burst: 30 };
        let mut b = Bucket::full(budget, 0);
        // 1,000 requests spread over 10 s: 30 at once plus 2 a second.
        let allowed = (0..1_000).filter(|i| b.take(budget, i * 10).is_ok()).count();
        assert_eq!(allowed, 30 + 19, "30 + 2/s for 9.99 s");
    }

    #[test]
    fn the_wait_is_named_in_whole_seconds() {
        let budget = Budget { per_minute: 1, burst: 1 };
        let mut b = Bucket::full(budget, 0);
        assert_eq!(b.take(budget, 0), Ok(()));
        assert_eq!(b.take(budget, 0), Err(60));
        assert_eq!(b.take(budget, 30_000), Err(30));
        let none = Budget { per_minute: 0, burst: 0 };
        assert_eq!(Bucket::full(none, 0).take(none, 0), Err(60));
        // A clock that steps back never adds requests.
        let mut b = Bucket::full(budget, 10_000);
        assert_eq!(b.take(budget, 10_000), Ok(()));
        assert!(b.take(budget, 0).is_err());
    }
}
