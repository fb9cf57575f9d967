//! Probe and lifecycle plugins: calls about one container, with per-call grants.

use std::time::Duration;

use crate::bindings::probe_handler::ProbeResult;
use crate::bindings::types::{ContainerTarget, Handler};
use crate::error::CallError;
use crate::manifest::Kind;
use crate::plugin::{Exports, Plugin, SlotWait};
use crate::state::CallTarget;

/// The call grant of a container target: exec in it, connect to its pod's IP.
fn call_target(target: &ContainerTarget) -> CallTarget {
    CallTarget {
        pod_uid: target.pod_uid.clone(),
        container_id: target.container_id.as_str().into(),
        pod_ip: target.pod_ip.as_deref().and_then(|ip| ip.parse().ok()),
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
        target: &ContainerTarget,
        handler: &Handler,
        timeout: Duration,
    ) -> Result<ProbeResult, CallError> {
        let Exports::Probe(indices) = self.exports.clone() else {
            return Err(self.wrong_kind("check", Kind::Probe));
        };
        let args = (target, handler, millis(timeout));
        self.call_within(
            "check",
            Some(call_target(target)),
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
        target: &ContainerTarget,
        handler: &Handler,
        pre_stop: bool,
        within: Duration,
    ) -> Result<(), CallError> {
        let Exports::Lifecycle(indices) = self.exports.clone() else {
            return Err(self.wrong_kind("hook", Kind::Lifecycle));
        };
        let call = if pre_stop { "pre-stop" } else { "post-start" };
        self.call_within(
            call,
            Some(call_target(target)),
            // A preStop hook's time is the grace period's, queue included; a
            // postStart hook's starts when it runs.
            if pre_stop {
                SlotWait::OutOfDeadline
            } else {
                SlotWait::UpTo(within)
            },
            within,
            &(target, handler),
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
