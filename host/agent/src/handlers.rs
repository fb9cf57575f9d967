//! The container-handlers port: how probes and lifecycle hooks are carried
//! out (in the daemon: probe and hook plugins). Next to the admission port;
//! the prober decides *when* to probe, a [`ContainerHandlers`] *how*.

use std::borrow::Cow;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::time::Duration;

use crate::pod_ext::{PodExt, PodUidExt};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, HTTPGetAction, HTTPHeader, LifecycleHandler, Pod, Probe,
    TCPSocketAction,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use wasmlet_core::{ContainerId, PodUid};

pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    Success,
    Failure,
    /// The check could not be carried out; the result is thrown away.
    Unknown,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checked {
    pub outcome: Outcome,
    pub message: String,
}

/// The container a probe or hook is about.
#[derive(Debug, Clone)]
pub struct HandlerTarget {
    pub pod_name: String,
    pub pod_namespace: String,
    pub pod_uid: PodUid,
    /// The pod's IP; the node's for a host-network pod.
    pub pod_ip: Option<IpAddr>,
    /// Where an httpGet or tcpSocket action goes: its `host`, else the
    /// pod's IP. The call may reach this address and no other.
    pub address: Option<IpAddr>,
    pub container_name: String,
    pub container_id: ContainerId,
    pub ports: Vec<ContainerPort>,
}

impl HandlerTarget {
    /// A target whose actions go to the pod's IP.
    pub fn new(pod: &Pod, container: &Container, id: ContainerId, pod_ip: Option<IpAddr>) -> Self {
        Self {
            pod_name: pod.name_str().to_owned(),
            pod_namespace: pod.namespace_or_default().to_owned(),
            pod_uid: pod.pod_uid(),
            pod_ip,
            address: pod_ip,
            container_name: container.name.clone(),
            container_id: id,
            ports: container.ports.clone().unwrap_or_default(),
        }
    }

    /// Points an httpGet or tcpSocket action at its `host` as the kubelet
    /// does (the check runs from the node's network): an IP as it is, a
    /// name looked up on the node. The action is rewritten to address the
    /// IP; an httpGet keeps the name as its `Host` header (`name:port`, as
    /// Go's client sends it) unless it sets one. An error is the lookup's.
    async fn aim(
        &mut self,
        http_get: Option<&mut HTTPGetAction>,
        tcp_socket: Option<&mut TCPSocketAction>,
    ) -> Result<(), String> {
        let (host, port) = match (&http_get, &tcp_socket) {
            (Some(a), _) => (a.host.clone(), Some(&a.port)),
            (None, Some(a)) => (a.host.clone(), Some(&a.port)),
            (None, None) => (None, None),
        };
        let Some(host) = host.filter(|h| !h.is_empty()) else {
            return Ok(());
        };
        let port = port.and_then(|p| self.port_number(p));
        let ip = match host.parse::<IpAddr>() {
            Ok(ip) => ip,
            Err(_) => lookup(&host).await?,
        };
        self.address = Some(ip);
        if let Some(action) = http_get {
            let headers = action.http_headers.get_or_insert_with(Vec::new);
            if host.parse::<IpAddr>().is_err()
                && !headers.iter().any(|h| h.name.eq_ignore_ascii_case("host"))
            {
                let value = port.map_or(host.clone(), |p| format!("{host}:{p}"));
                headers.push(HTTPHeader {
                    name: "Host".into(),
                    value,
                });
            }
            action.host = Some(ip.to_string());
        } else if let Some(action) = tcp_socket {
            action.host = Some(ip.to_string());
        }
        Ok(())
    }

    /// `probe`, aimed: a rewritten copy only if it names a host.
    pub async fn aim_probe<'p>(&mut self, probe: &'p Probe) -> Result<Cow<'p, Probe>, String> {
        if !names_host(probe.http_get.as_ref(), probe.tcp_socket.as_ref()) {
            return Ok(Cow::Borrowed(probe));
        }
        let mut probe = probe.clone();
        self.aim(probe.http_get.as_mut(), probe.tcp_socket.as_mut())
            .await?;
        Ok(Cow::Owned(probe))
    }

    /// A lifecycle hook, aimed as [`Self::aim_probe`].
    pub async fn aim_hook<'h>(
        &mut self,
        hook: &'h LifecycleHandler,
    ) -> Result<Cow<'h, LifecycleHandler>, String> {
        if !names_host(hook.http_get.as_ref(), hook.tcp_socket.as_ref()) {
            return Ok(Cow::Borrowed(hook));
        }
        let mut hook = hook.clone();
        self.aim(hook.http_get.as_mut(), hook.tcp_socket.as_mut())
            .await?;
        Ok(Cow::Owned(hook))
    }

    fn port_number(&self, port: &IntOrString) -> Option<u16> {
        match port {
            IntOrString::Int(n) => u16::try_from(*n).ok(),
            IntOrString::String(name) => self
                .ports
                .iter()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .and_then(|p| u16::try_from(p.container_port).ok()),
        }
    }
}

fn names_host(http_get: Option<&HTTPGetAction>, tcp_socket: Option<&TCPSocketAction>) -> bool {
    let host = http_get
        .and_then(|a| a.host.as_deref())
        .or_else(|| tcp_socket.and_then(|a| a.host.as_deref()));
    host.is_some_and(|h| !h.is_empty())
}

/// `name`'s address from the node's resolver (off the runtime's threads),
/// with Go's wording for a name that is not found. Go's dialer tries each
/// address; the guest gets one, so an IPv4 one first (`localhost` is
/// `::1` and `127.0.0.1`, and servers listen on the second more often).
async fn lookup(name: &str) -> Result<IpAddr, String> {
    match tokio::net::lookup_host((name, 0)).await {
        Ok(found) => {
            let found: Vec<IpAddr> = found.map(|a| a.ip()).collect();
            let first = found.iter().find(|ip| ip.is_ipv4()).or(found.first());
            first
                .copied()
                .ok_or_else(|| format!("dial tcp: lookup {name}: no such host"))
        }
        Err(e) => Err(format!("dial tcp: lookup {name}: {e}")),
    }
}

/// Why a lifecycle hook did not succeed; the text is the hook event's message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HookError {
    /// No handler can run this kind of hook (none configured or loaded).
    #[error("{0}")]
    NoHandler(String),
    /// The hook in the spec cannot be carried out as written.
    #[error("{0}")]
    Invalid(String),
    #[error("the hook did not finish within {0:?}")]
    Deadline(Duration),
    /// It never ran: every slot of its handler stayed taken.
    #[error("the hook could not run: {0}")]
    Busy(String),
    /// It ran and failed.
    #[error("{0}")]
    Failed(String),
}

/// How probes and lifecycle hooks are carried out.
pub trait ContainerHandlers: Send + Sync + 'static {
    /// One check; one still running at `timeout` is a failure.
    fn probe<'a>(
        &'a self,
        target: &'a HandlerTarget,
        probe: &'a Probe,
        timeout: Duration,
    ) -> BoxFuture<'a, Checked>;

    /// A postStart or preStop handler, cut off after `within`.
    fn hook<'a>(
        &'a self,
        target: &'a HandlerTarget,
        handler: &'a LifecycleHandler,
        pre_stop: bool,
        within: Duration,
    ) -> BoxFuture<'a, Result<(), HookError>>;
}

/// Answers every probe and hook with "not configured": an agent without
/// handler plugins.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoHandlers;

impl ContainerHandlers for NoHandlers {
    fn probe<'a>(
        &'a self,
        _target: &'a HandlerTarget,
        _probe: &'a Probe,
        _timeout: Duration,
    ) -> BoxFuture<'a, Checked> {
        Box::pin(async {
            Checked {
                outcome: Outcome::Unknown,
                message: "no probe handlers are configured".into(),
            }
        })
    }

    fn hook<'a>(
        &'a self,
        _target: &'a HandlerTarget,
        _handler: &'a LifecycleHandler,
        _pre_stop: bool,
        _within: Duration,
    ) -> BoxFuture<'a, Result<(), HookError>> {
        Box::pin(async {
            Err(HookError::NoHandler(
                "no lifecycle hook handlers are configured".into(),
            ))
        })
    }
}
