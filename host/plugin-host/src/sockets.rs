//! `wasi:sockets/tcp-create-socket`, narrowed to the grant: a plugin without
//! `connect` destinations gets no TCP socket at all, and WASI sockets and the
//! `net` import share one cap on what a call (or a long-lived instance) holds
//! open, so no plugin can run the agent out of file descriptors.

use std::sync::LazyLock;
use std::sync::atomic::{AtomicUsize, Ordering};

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddressFamily};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket;
use wasmtime_wasi::p2::{SocketError, SocketResult, TcpSocket};
use wasmtime_wasi::sockets::WasiSocketsView;

use crate::state::CallState;

/// Sockets and `net` connections one store may hold open at once.
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

/// The store's data, seen as the granted `tcp-create-socket`.
struct Granted<'a>(&'a mut CallState);

impl HasData for Granted<'static> {
    type Data<'a> = Granted<'a>;
}

/// Replaces wasmtime-wasi's `create-tcp-socket` in `linker` (which must
/// allow shadowing) with the granted one.
pub(crate) fn add_to_linker(linker: &mut Linker<CallState>) -> wasmtime::Result<()> {
    tcp_create_socket::add_to_linker::<CallState, Granted<'static>>(linker, |state| Granted(state))
}

// `tcp-create-socket` uses `network`'s types: wasmtime-wasi's own, unchanged.
impl network::Host for Granted<'_> {
    fn convert_error_code(&mut self, error: SocketError) -> wasmtime::Result<ErrorCode> {
        network::Host::convert_error_code(&mut self.0.sockets(), error)
    }

    fn network_error_code(
        &mut self,
        err: Resource<network::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        network::Host::network_error_code(&mut self.0.sockets(), err)
    }
}

impl network::HostNetwork for Granted<'_> {
    fn drop(&mut self, this: Resource<network::Network>) -> wasmtime::Result<()> {
        network::HostNetwork::drop(&mut self.0.sockets(), this)
    }
}

impl CallState {
    /// WASI sockets and `net` connections the store holds now.
    pub(crate) fn open_sockets(&mut self) -> usize {
        let sockets = self
            .table
            .iter_mut()
            .filter(|entry| entry.is::<TcpSocket>())
            .count();
        sockets + self.open_connections
    }
}

impl tcp_create_socket::Host for Granted<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        let state = &mut *self.0;
        if state.reach_is_empty() {
            state.refuse("a TCP socket: no connect destination is granted".into());
            return Err(ErrorCode::AccessDenied.into());
        }
        if state.open_sockets() >= MAX_OPEN {
            state.refuse(format!(
                "a TCP socket: {MAX_OPEN} sockets and connections are open already"
            ));
            return Err(ErrorCode::NewSocketLimit.into());
        }
        if !state.fds.take() {
            state.refuse(over_budget());
            return Err(ErrorCode::NewSocketLimit.into());
        }
        tcp_create_socket::Host::create_tcp_socket(&mut state.sockets(), family)
    }
}
