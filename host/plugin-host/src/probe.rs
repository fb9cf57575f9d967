//! Probe and lifecycle plugins: calls about one container, with per-call grants.

use std::time::Duration;

use crate::bindings::lifecycle_handler;
use crate::bindings::probe_handler::{self, ProbeResult};
use k8s_openapi::api::core::v1::ContainerPort;

use crate::bindings::types::{ContainerTarget, Handler};
use crate::call::SlotWait;
use crate::error::CallError;
use crate::grants::CallTarget;
use crate::plugin::Plugin;
use crate::pod_view::container_ports;

/// The container a probe or hook call is about: the host's typed facts
/// (whose slots it takes, where exec runs, which address it may reach) and
/// the WIT view the guest gets, built from them once.
#[derive(Debug, Clone)]
pub struct ContainerCall {
    grant: CallTarget,
    view: ContainerTarget,
}

impl ContainerCall {
    /// `ports` are the container's spec ports, which named ports resolve against.
    pub fn new(
        grant: CallTarget,
        pod_name: &str,
        pod_namespace: &str,
        container_name: &str,
        ports: &[ContainerPort],
    ) -> Result<Self, String> {
        let view = ContainerTarget {
            pod_name: pod_name.to_owned(),
            pod_namespace: pod_namespace.to_owned(),
            pod_uid: grant.pod_uid.to_string(),
            pod_ip: grant.pod_ip.map(|ip| ip.to_string()),
            container_name: container_name.to_owned(),
            container_id: grant.container_id.to_string(),
            ports: container_ports(ports, container_name)?,
        };
        Ok(Self { grant, view })
    }

    /// What the guest is told.
    pub fn view(&self) -> &ContainerTarget {
        &self.view
    }
}

fn millis(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

impl Plugin {
    /// Runs one probe check of `target`; a check still running at `timeout`
    /// is cut off (a `Deadline` failure: the probe failed). One that found
    /// no free slot within `timeout` is `Busy`: it did not run.
    pub async fn check(
        &self,
        target: &ContainerCall,
        handler: &Handler,
        timeout: Duration,
    ) -> Result<ProbeResult, CallError> {
        let indices: probe_handler::GuestIndices = self.exports_for("check")?;
        let args = (&target.view, handler, millis(timeout));
        self.call_within(
            "check",
            Some(target.grant.clone()),
            // Waiting for a slot is not the check's time: a check that gets
            // none within its timeout did not run (`Busy`), it did not fail.
            SlotWait::UpTo(timeout),
            timeout,
            &args,
            move |store, instance, args| {
                Box::pin(async move {
                    let (target, handler, timeout_ms) = *args;
                    let guest = indices.load(&mut *store, &instance)?;
                    guest
                        .call_check(&mut *store, target, handler, timeout_ms)
                        .await
                })
            },
        )
        .await
        .map(|result| ProbeResult {
            outcome: result.outcome,
            message: crate::bounds::message(result.message),
        })
    }

    /// Runs a postStart (`pre_stop = false`) or preStop handler for
    /// `target`, cut off after `within` (a preStop's share of the grace period).
    pub async fn run_hook(
        &self,
        target: &ContainerCall,
        handler: &Handler,
        pre_stop: bool,
        within: Duration,
    ) -> Result<(), CallError> {
        let call = if pre_stop { "pre-stop" } else { "post-start" };
        let indices: lifecycle_handler::GuestIndices = self.exports_for(call)?;
        self.call_within(
            call,
            Some(target.grant.clone()),
            // A preStop hook's time is the grace period's, queue included; a
            // postStart hook's starts when it runs.
            if pre_stop {
                SlotWait::OutOfDeadline
            } else {
                SlotWait::UpTo(within)
            },
            within,
            &(&target.view, handler),
            move |store, instance, args| {
                Box::pin(async move {
                    let (target, handler) = *args;
                    let guest = indices.load(&mut *store, &instance)?;
                    if pre_stop {
                        guest.call_pre_stop(&mut *store, target, handler).await
                    } else {
                        guest.call_post_start(&mut *store, target, handler).await
                    }
                })
            },
        )
        .await
    }
}
