//! `wasi:sockets/tcp-create-socket`, narrowed to the grant: a plugin without
//! `connect` destinations gets no TCP socket at all, and WASI sockets and the
//! `net` import share one cap on what a call (or a long-lived instance) holds
//! open, so no plugin can run the agent out of file descriptors.

use wasmtime::component::{HasData, Linker, Resource};
use wasmtime_wasi::p2::bindings::sockets::network::{self, ErrorCode, IpAddressFamily};
use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket;
use wasmtime_wasi::p2::{SocketError, SocketResult, TcpSocket};
use wasmtime_wasi::sockets::WasiSocketsView;

use crate::fd_budget::{MAX_OPEN, over_budget};
use crate::state::CallState;

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
    /// WASI sockets, `net` connections and HTTP connections the store holds now.
    pub(crate) fn open_sockets(&mut self) -> usize {
        let sockets = self
            .table
            .iter_mut()
            .filter(|entry| entry.is::<TcpSocket>())
            .count();
        sockets + self.open_connections + self.http.open()
    }
}

impl tcp_create_socket::Host for Granted<'_> {
    fn create_tcp_socket(&mut self, family: IpAddressFamily) -> SocketResult<Resource<TcpSocket>> {
        let state = &mut *self.0;
        if state.grants.reach_is_empty() {
            state
                .grants
                .refuse("a TCP socket: no connect destination is granted".into());
            return Err(ErrorCode::AccessDenied.into());
        }
        if state.open_sockets() >= MAX_OPEN {
            state.grants.refuse(format!(
                "a TCP socket: {MAX_OPEN} sockets and connections are open already"
            ));
            return Err(ErrorCode::NewSocketLimit.into());
        }
        if !state.fds.take() {
            state.grants.refuse(over_budget());
            return Err(ErrorCode::NewSocketLimit.into());
        }
        tcp_create_socket::Host::create_tcp_socket(&mut state.sockets(), family)
    }
}
