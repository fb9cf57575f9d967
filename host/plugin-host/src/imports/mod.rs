//! The host side of every import a plugin may have, one file each (as
//! wasmtime-wasi's `p2/host`): the wasmlet:plugin interfaces, the WASI socket
//! constructor and wasi:http's outgoing requests, narrowed to the call's grants.

pub(crate) mod changes;
pub(crate) mod exec;
pub(crate) mod host;
pub(crate) mod http;
pub(crate) mod kube_api;
pub(crate) mod net;
pub(crate) mod sockets;
