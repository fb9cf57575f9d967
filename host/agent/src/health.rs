//! Liveness of the agent's loops, for `/healthz`.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// When a loop last completed a round.
#[derive(Debug, Default)]
pub struct Heartbeat(Mutex<Option<Instant>>);

impl Heartbeat {
    pub fn beat(&self) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Ok if the last round was at most `threshold` ago; else why not.
    pub fn check(&self, what: &str, threshold: Duration) -> Result<(), String> {
        match *self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(at) if at.elapsed() < threshold => Ok(()),
            Some(at) => Err(format!(
                "{what} was last seen active {:?} ago; threshold is {threshold:?}",
                at.elapsed()
            )),
            None => Err(format!("{what} has yet to be successful")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unhealthy_until_the_first_beat_and_after_the_threshold() {
        let heart = Heartbeat::default();
        assert!(heart.check("pleg", Duration::from_secs(1)).is_err());
        heart.beat();
        assert!(heart.check("pleg", Duration::from_secs(1)).is_ok());
        assert!(
            heart
                .check("pleg", Duration::ZERO)
                .is_err_and(|e| e.contains("pleg was last seen"))
        );
    }
}
