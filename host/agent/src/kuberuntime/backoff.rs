//! Per-key exponential back-off, as the kubelet's for crashing containers
//! (CrashLoopBackOff) and failing image pulls (ImagePullBackOff).
//!
//! Time is passed in, never read: the sync logic decides what "now" is, and
//! tests can walk through hours in microseconds.

use std::collections::HashMap;
use std::hash::Hash;
use std::time::Duration;
use tokio::time::Instant;

#[derive(Debug, Clone, Copy)]
struct Entry {
    delay: Duration,
    last_failure: Instant,
}

/// Delays that start at `initial`, double on each failure up to `max`, and
/// start over once a key has gone `reset_after` without failing.
#[derive(Debug)]
pub struct Backoff<K> {
    initial: Duration,
    max: Duration,
    reset_after: Duration,
    entries: HashMap<K, Entry>,
}

impl<K: Hash + Eq + Clone> Backoff<K> {
    pub fn new(initial: Duration, max: Duration, reset_after: Duration) -> Self {
        Self {
            initial,
            max,
            reset_after,
            entries: HashMap::new(),
        }
    }

    /// The kubelet's container restart back-off: 10 s doubling to 300 s, reset
    /// after 10 minutes without a failure.
    pub fn crash_loop() -> Self {
        Self::new(
            Duration::from_secs(10),
            Duration::from_secs(300),
            Duration::from_secs(600),
        )
    }

    /// The kubelet's image pull back-off: 10 s doubling to 300 s.
    pub fn image_pull() -> Self {
        Self::new(
            Duration::from_secs(10),
            Duration::from_secs(300),
            Duration::from_secs(600),
        )
    }

    /// Records a failure of `key` at `now` and returns how long to wait before
    /// the next attempt.
    pub fn fail(&mut self, key: &K, now: Instant) -> Duration {
        let entry = match self.entries.get(key) {
            Some(e) if now.saturating_duration_since(e.last_failure) < self.reset_after => Entry {
                delay: (e.delay * 2).min(self.max),
                last_failure: now,
            },
            _ => Entry {
                delay: self.initial,
                last_failure: now,
            },
        };
        self.entries.insert(key.clone(), entry);
        entry.delay
    }

    /// How much longer `key` must wait at `now` (zero: it may go).
    pub fn remaining(&self, key: &K, now: Instant) -> Duration {
        self.entries.get(key).map_or(Duration::ZERO, |e| {
            (e.last_failure + e.delay).saturating_duration_since(now)
        })
    }

    /// How much longer `key` must wait at `now` when its latest failure
    /// happened at `since` (e.g. when the container exited), and the current
    /// delay. The kubelet measures crash-loop back-off from the exit, not from
    /// when the agent noticed it.
    pub fn remaining_since(&self, key: &K, since: Instant, now: Instant) -> (Duration, Duration) {
        match self.entries.get(key) {
            // It ran long enough since the last failure: start over.
            Some(e) if since.saturating_duration_since(e.last_failure) < self.reset_after => {
                ((since + e.delay).saturating_duration_since(now), e.delay)
            }
            _ => (Duration::ZERO, Duration::ZERO),
        }
    }

    /// Whether `key` is still waiting at `now`.
    pub fn in_backoff(&self, key: &K, now: Instant) -> bool {
        !self.remaining(key, now).is_zero()
    }

    /// Forgets `key` (e.g. its pod is gone).
    pub fn forget(&mut self, key: &K) {
        self.entries.remove(key);
    }

    /// Drops keys that have not failed for `reset_after`: they would start over anyway.
    pub fn gc(&mut self, now: Instant) {
        let reset_after = self.reset_after;
        self.entries
            .retain(|_, e| now.saturating_duration_since(e.last_failure) < reset_after);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: fn(u64) -> Duration = Duration::from_secs;

    #[test]
    fn doubles_from_ten_seconds_to_five_minutes() {
        let mut b = Backoff::crash_loop();
        let t0 = Instant::now();
        let mut now = t0;
        let mut delays = Vec::new();
        for _ in 0..7 {
            let d = b.fail(&"web/app", now);
            delays.push(d.as_secs());
            now += d;
        }
        assert_eq!(delays, vec![10, 20, 40, 80, 160, 300, 300]);
    }

    #[test]
    fn waiting_is_measured_from_the_last_failure() {
        let mut b = Backoff::crash_loop();
        let t0 = Instant::now();
        b.fail(&"k", t0);
        assert!(b.in_backoff(&"k", t0 + S(9)));
        assert_eq!(b.remaining(&"k", t0 + S(4)), S(6));
        assert!(!b.in_backoff(&"k", t0 + S(10)));
        assert!(!b.in_backoff(&"other", t0), "unknown keys never wait");
    }

    #[test]
    fn ten_quiet_minutes_start_over() {
        let mut b = Backoff::crash_loop();
        let t0 = Instant::now();
        b.fail(&"k", t0);
        b.fail(&"k", t0 + S(10));
        assert_eq!(b.fail(&"k", t0 + S(30)), S(40));
        // Ran fine for ten minutes after the last crash: back to the start.
        assert_eq!(b.fail(&"k", t0 + S(30) + S(600)), S(10));
    }

    #[test]
    fn keys_are_independent_and_can_be_forgotten() {
        let mut b = Backoff::image_pull();
        let t0 = Instant::now();
        b.fail(&"a", t0);
        b.fail(&"a", t0);
        assert_eq!(b.fail(&"b", t0), S(10));
        b.forget(&"a");
        assert_eq!(b.fail(&"a", t0), S(10));
        b.gc(t0 + S(601));
        assert!(b.entries.is_empty());
    }
}
