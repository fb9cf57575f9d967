//! `activeDeadlineSeconds`, as the kubelet's active deadline handler: a pod
//! active on the node longer than its deadline is Failed with reason
//! DeadlineExceeded and its containers are stopped. It counts from when the
//! agent first took the pod on (the kubelet's `status.startTime`), or from
//! its oldest sandbox if that is older (an agent restart does not give a
//! pod more time).

use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::Pod;

use crate::kuberuntime::runtime_pod::RuntimePod;

pub const REASON: &str = "DeadlineExceeded";
pub const MESSAGE: &str = "Pod was active on the node longer than the specified deadline";

/// `spec.activeDeadlineSeconds`, if set (validated positive).
pub fn deadline(pod: &Pod) -> Option<Duration> {
    let seconds = pod.spec.as_ref()?.active_deadline_seconds?;
    Some(Duration::from_secs(u64::try_from(seconds).ok()?))
}

/// How long `pod` has been active: `taken_on` ago, or since its oldest
/// sandbox was created.
pub fn active_for(runtime: &RuntimePod, taken_on: Duration) -> Duration {
    let oldest = runtime
        .sandboxes
        .iter()
        .filter_map(|s| SystemTime::now().duration_since(s.created_at).ok())
        .max()
        .unwrap_or_default();
    taken_on.max(oldest)
}

/// Time left before the deadline: `None` without one, zero once past it.
pub fn remaining(pod: &Pod, active_for: Duration) -> Option<Duration> {
    deadline(pod).map(|d| d.saturating_sub(active_for))
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::core::v1::PodSpec;

    #[test]
    fn the_deadline_counts_from_the_start() {
        let pod = Pod {
            spec: Some(PodSpec {
                active_deadline_seconds: Some(30),
                ..Default::default()
            }),
            ..Default::default()
        };
        let runtime = RuntimePod::default();
        let secs = Duration::from_secs;
        assert_eq!(
            remaining(&pod, active_for(&runtime, secs(10))),
            Some(secs(20))
        );
        assert_eq!(
            remaining(&pod, active_for(&runtime, secs(31))),
            Some(Duration::ZERO)
        );
        assert_eq!(remaining(&Pod::default(), secs(1000)), None);
    }
}
