//! Per-message backoff for a source: a message whose processing failed with a temporary error
//! waits (1 s doubling to 5 min) while the messages after it flow. Two temporary failures in a
//! row mean the store itself is away, and the source backs off as a whole instead. Pure: the
//! caller passes `now`.

use std::collections::HashMap;

const FIRST_MS: i64 = 1_000;
const MAX_MS: i64 = 300_000;
/// Messages remembered at most (the oldest entry is dropped past it).
const CAP: usize = 10_000;

#[derive(Debug, Default)]
pub struct Deferrals {
    waiting: HashMap<String, (i64, i64)>,
    failures_in_a_row: u32,
}

impl Deferrals {
    /// Whether message `key` may be tried at `now`.
    pub fn ready(&self, key: &str, now: i64) -> bool {
        self.waiting.get(key).is_none_or(|(at, _)| now >= *at)
    }

    /// Records a temporary failure of `key`; returns whether the source should stop this round
    /// (two failures in a row: the cause is not this message).
    pub fn failed(&mut self, key: &str, now: i64) -> bool {
        if self.waiting.len() >= CAP
            && !self.waiting.contains_key(key)
            && let Some(oldest) = self.waiting.iter().min_by_key(|(_, (at, _))| *at).map(|(k, _)| k.clone())
        {
            self.waiting.remove(&oldest);
        }
        let delay = self.waiting.get(key).map_or(FIRST_MS, |(_, d)| (d * 2).min(MAX_MS));
        self.waiting.insert(key.to_string(), (now + delay, delay));
        self.failures_in_a_row += 1;
        self.failures_in_a_row >= 2
    }

    /// Records that `key` was processed (or quarantined).
    pub fn done(&mut self, key: &str) {
        self.waiting.remove(key);
        self.failures_in_a_row = 0;
    }

    /// How many messages wait.
    pub fn len(&self) -> usize {
        self.waiting.len()
    }

    pub fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    /// A new round starts: the run of failures is counted afresh.
    pub fn new_round(&mut self) {
        self.failures_in_a_row = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failing_message_waits_with_growing_delays_while_others_flow() {
        let mut d = Deferrals::default();
        assert!(d.ready("a", 0));
        assert!(!d.failed("a", 0), "one failure does not stop the round");
        assert!(!d.ready("a", 999) && d.ready("a", 1_000) && d.ready("b", 0));
        d.done("b");
        assert!(!d.failed("a", 1_000));
        assert!(!d.ready("a", 2_999) && d.ready("a", 3_000), "the delay doubled");
        assert!(d.failed("c", 3_000), "two failures in a row: the store is away");
        d.done("a");
        assert_eq!(d.len(), 1);
        for i in 0..20 {
            d.failed("a", i);
        }
        assert!(!d.ready("a", 19 + MAX_MS - 1) && d.ready("a", 19 + MAX_MS), "capped at five minutes");
    }
}
