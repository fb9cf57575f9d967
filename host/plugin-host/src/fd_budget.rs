//! The plugins' share of the agent's file descriptors, process-wide.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// Sockets and `net` connections one store may hold open at once (and, apart,
/// HTTP connections).
pub(crate) const MAX_OPEN: usize = 16;

/// File descriptors all plugins together may hold: half the agent's soft
/// open-file limit, read at the first socket (after the agent raised it), so
/// the agent's own work (CRI, HTTP, logs) always keeps the other half.
static PLUGIN_FD_BUDGET: LazyLock<usize> = LazyLock::new(|| {
    let limit = rustix::process::getrlimit(rustix::process::Resource::Nofile);
    limit
        .current
        .map_or(usize::MAX, |n| usize::try_from(n / 2).unwrap_or(usize::MAX))
});
static PLUGIN_FDS: AtomicUsize = AtomicUsize::new(0);

/// What one store holds of the plugins' descriptor budget; given back as its
/// connections close, and all of it with the store (WASI sockets are counted
/// until then: on the safe side).
#[derive(Debug, Default)]
pub(crate) struct FdCharge(usize);

impl FdCharge {
    /// One more descriptor, if the budget has it.
    pub fn take(&mut self) -> bool {
        let taken = PLUGIN_FDS
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < *PLUGIN_FD_BUDGET).then_some(n + 1)
            })
            .is_ok();
        self.0 += usize::from(taken);
        taken
    }

    pub fn release(&mut self) {
        if self.0 > 0 {
            self.0 -= 1;
            PLUGIN_FDS.fetch_sub(1, Ordering::AcqRel);
        }
    }
}

impl Drop for FdCharge {
    fn drop(&mut self) {
        PLUGIN_FDS.fetch_sub(self.0, Ordering::AcqRel);
    }
}

/// The refusal when the plugins' share of descriptors is used up.
pub(crate) fn over_budget() -> String {
    format!(
        "a socket: the plugins' {} file descriptors are in use",
        *PLUGIN_FD_BUDGET
    )
}
