//! The engine's epoch, the clock of every plugin deadline: advanced every
//! [`EPOCH_TICK`] by a thread of its own (a blocked async runtime must not
//! stop deadlines), but only while some guest code runs. A call counts from
//! the moment it instantiates until it returns, less the time its guest
//! waits in a host call that is not work (`changes.wait`, a watch's `next`).
//! With nothing running the thread is parked: an idle agent's plugins cost
//! no CPU.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::{JoinHandle, Thread};
use std::time::Duration;

use wasmtime::Engine;

/// How often the engine's epoch advances: the resolution of every deadline.
pub(crate) const EPOCH_TICK: Duration = Duration::from_millis(1);

#[derive(Debug)]
pub(crate) struct EpochClock {
    /// Guests running now.
    running: AtomicUsize,
    stop: AtomicBool,
    /// Epochs advanced so far.
    ticks: AtomicU64,
    ticker: Thread,
}

impl EpochClock {
    /// A guest starts running: the clock goes (again).
    fn start(&self) {
        if self.running.fetch_add(1, Ordering::AcqRel) == 0 {
            self.ticker.unpark();
        }
    }

    fn end(&self) {
        self.running.fetch_sub(1, Ordering::AcqRel);
    }

    /// Counts the caller as running until the guard is dropped.
    pub(crate) fn running(self: &Arc<Self>) -> Running {
        self.start();
        Running(self.clone())
    }

    /// Counts the caller (a guest waiting in a host call) as not running
    /// until the guard is dropped.
    pub(crate) fn waiting(self: &Arc<Self>) -> Waiting {
        self.end();
        Waiting(self.clone())
    }

    #[cfg(test)]
    pub(crate) fn ticks(&self) -> u64 {
        self.ticks.load(Ordering::Relaxed)
    }
}

/// A guest running: see [`EpochClock::running`].
#[derive(Debug)]
pub(crate) struct Running(Arc<EpochClock>);

impl Drop for Running {
    fn drop(&mut self) {
        self.0.end();
    }
}

/// A guest waiting: see [`EpochClock::waiting`].
#[derive(Debug)]
pub(crate) struct Waiting(Arc<EpochClock>);

impl Drop for Waiting {
    fn drop(&mut self) {
        self.0.start();
    }
}

/// The ticking thread, stopped and joined when dropped.
#[derive(Debug)]
pub(crate) struct EpochTicker {
    pub(crate) clock: Arc<EpochClock>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    pub(crate) fn start(engine: Engine) -> std::io::Result<Self> {
        let (tx, rx) = std::sync::mpsc::channel::<Arc<EpochClock>>();
        let thread = std::thread::Builder::new()
            .name("wasmlet-epoch".into())
            .spawn(move || {
                let Ok(clock) = rx.recv() else { return };
                while !clock.stop.load(Ordering::Acquire) {
                    if clock.running.load(Ordering::Acquire) == 0 {
                        // An unpark between the check and here is not lost:
                        // park returns at once then.
                        std::thread::park();
                        continue;
                    }
                    std::thread::sleep(EPOCH_TICK);
                    engine.increment_epoch();
                    clock.ticks.fetch_add(1, Ordering::Relaxed);
                }
            })?;
        let clock = Arc::new(EpochClock {
            running: AtomicUsize::new(0),
            stop: AtomicBool::new(false),
            ticks: AtomicU64::new(0),
            ticker: thread.thread().clone(),
        });
        // The thread waits for its clock; it cannot fail to get it.
        let _ = tx.send(clock.clone());
        Ok(Self {
            clock,
            thread: Some(thread),
        })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.clock.stop.store(true, Ordering::Release);
        self.clock.ticker.unpark();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_clock_ticks_only_while_a_guest_runs() {
        let ticker = EpochTicker::start(Engine::default()).expect("ticker");
        let clock = ticker.clock.clone();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(clock.ticks(), 0, "idle: no tick");
        let running = clock.running();
        std::thread::sleep(Duration::from_millis(30));
        let ran = clock.ticks();
        assert!(ran > 0, "running: ticks");
        {
            let _waiting = clock.waiting();
            let before = clock.ticks();
            std::thread::sleep(Duration::from_millis(30));
            assert!(clock.ticks() <= before + 1, "waiting: no more ticks");
        }
        std::thread::sleep(Duration::from_millis(30));
        assert!(clock.ticks() > ran, "running again: ticks again");
        drop(running);
        std::thread::sleep(Duration::from_millis(5));
        let stopped = clock.ticks();
        std::thread::sleep(Duration::from_millis(30));
        assert_eq!(clock.ticks(), stopped, "done: no tick");
    }
}
