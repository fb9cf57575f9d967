//! The host side of `wasi:http/outgoing-handler`: wasmtime-wasi-http's own
//! implementation, over the call's table, with the call's
//! [`crate::outgoing_http::OutgoingHttp`] hooks (the grant, exact
//! addresses, the TLS policy).

use wasmtime_wasi_http::{WasiHttpCtxView, WasiHttpView};

use crate::state::CallState;

impl WasiHttpView for CallState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        // What a request made now may wait: the call's deadline, as it is now.
        self.http.deadline = self.deadline;
        WasiHttpCtxView {
            ctx: &mut self.http_ctx,
            table: &mut self.table,
            hooks: &mut self.http,
        }
    }
}
