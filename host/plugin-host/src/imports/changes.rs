//! `wasmlet:plugin/changes`: a long-lived source sleeps until the host
//! signals a change or its timeout passes; waiting is not working, so it does
//! not count against the call's deadline.

use std::time::{Duration, Instant};

use crate::bindings::changes;
use crate::state::CallState;

/// Longest a guest may sleep in `changes.wait` in one go.
pub(crate) const MAX_WAIT: Duration = Duration::from_secs(600);

impl changes::Host for CallState {
    async fn wait(&mut self, timeout_ms: u32) -> changes::Wake {
        let timeout = Duration::from_millis(u64::from(timeout_ms)).min(MAX_WAIT);
        let start = Instant::now();
        let _waiting = self.clock.waiting();
        let wake = match &self.changes {
            Some(notify) => tokio::select! {
                () = notify.notified() => changes::Wake::Changed,
                () = tokio::time::sleep(timeout) => changes::Wake::Timeout,
            },
            None => {
                tokio::time::sleep(timeout).await;
                changes::Wake::Timeout
            }
        };
        // Waiting is not working: it does not count against the deadline.
        self.deadline += start.elapsed();
        wake
    }
}
