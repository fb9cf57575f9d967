//! What one call may reach — the plugin's grant, plus the pod a probe or
//! hook is about — and what it tried and was refused, for its error report.

use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};

use wasmlet_core::{ContainerId, PodUid};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

use crate::bindings::types;
use crate::manifest::{Destination, Grant};

/// The container (and pod address) a probe or hook call is about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallTarget {
    /// The pod's UID: whose share of the plugin's slots the call takes.
    pub pod_uid: PodUid,
    pub container_id: ContainerId,
    /// The pod's IP, as the guest sees it.
    pub pod_ip: Option<IpAddr>,
    /// Where the call's action goes (its `host`, else the pod's IP): with
    /// the `target-pod` grant, the one address it may reach.
    pub address: Option<IpAddr>,
}

/// Distinct refusals kept per call; a plugin retrying in a loop adds no more.
const MAX_DENIED: usize = 8;

#[derive(Clone)]
pub(crate) struct CallGrants {
    /// The container the call is about, if any (exec goes there).
    pub(crate) target: Option<CallTarget>,
    /// Where the guest may connect (WASI sockets and `net` alike).
    reach: Arc<[Destination]>,
    /// Capabilities the guest tried and was refused.
    pub(crate) denied: Arc<Mutex<Vec<String>>>,
}

impl CallGrants {
    pub(crate) fn new(grant: &Grant, target: Option<CallTarget>) -> Self {
        let mut reach = grant.connect.clone();
        if grant.target_pod
            && let Some(ip) = target.as_ref().and_then(|t| t.address)
        {
            reach.push(Destination::Host(ip));
        }
        Self {
            target,
            reach: reach.into(),
            denied: Arc::default(),
        }
    }

    /// Puts every WASI socket address through the grant: connects only to
    /// granted destinations; the implicit bind of a connect (any address,
    /// port 0) is harmless; explicit binds, listening and UDP never are.
    pub(crate) fn check_sockets(&self, wasi: &mut WasiCtxBuilder) {
        let allowed = self.reach.clone();
        let refused = self.denied.clone();
        wasi.socket_addr_check(move |addr: SocketAddr, use_| {
            let ok = match use_ {
                SocketAddrUse::TcpConnect => allowed.iter().any(|d| d.allows(addr)),
                SocketAddrUse::TcpBind => addr.ip().is_unspecified() && addr.port() == 0,
                _ => false,
            };
            if !ok && let Ok(mut refused) = refused.lock() {
                record_denied(&mut refused, format!("{use_:?} {addr}"));
            }
            Box::pin(async move { ok })
        });
    }

    pub(crate) fn reach_is_empty(&self) -> bool {
        self.reach.is_empty()
    }

    pub(crate) fn may_connect(&self, addr: SocketAddr) -> bool {
        self.reach.iter().any(|d| d.allows(addr))
    }

    /// Records a refusal and says it to the guest.
    pub(crate) fn refuse(&self, what: String) -> types::Error {
        if let Ok(mut denied) = self.denied.lock() {
            record_denied(&mut denied, what.clone());
        }
        types::Error::Denied(what)
    }

    /// Everything refused so far, for the error report.
    pub(crate) fn refused(&self) -> String {
        self.denied.lock().map(|d| d.join("; ")).unwrap_or_default()
    }

    /// Everything refused so far, forgotten (a long-lived store's next call
    /// starts with none).
    pub(crate) fn take_refused(&self) -> Vec<String> {
        self.denied
            .lock()
            .map(|mut d| std::mem::take(&mut *d))
            .unwrap_or_default()
    }
}

fn record_denied(denied: &mut Vec<String>, what: String) {
    if denied.len() < MAX_DENIED && !denied.contains(&what) {
        denied.push(what);
    }
}
