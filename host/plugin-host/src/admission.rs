//! Admission plugins: the kubelet's canAdmitPod chain, as components.

use crate::bindings::admission_handler::Decision;
use crate::bindings::types::{NodeInfo, Pod};
use crate::error::CallError;
use crate::manifest::Kind;
use crate::plugin::{Exports, Plugin};

impl Plugin {
    /// Asks the plugin whether `pod` may start on `node`, which runs `active`.
    pub async fn admit(
        &self,
        pod: &Pod,
        node: &NodeInfo,
        active: &[Pod],
    ) -> Result<Decision, CallError> {
        let Exports::Admission(indices) = self.exports.clone() else {
            return Err(self.wrong_kind("admit", Kind::Admission));
        };
        self.call(
            "admit",
            None,
            &(pod, node, active),
            move |store, instance, args| {
                Box::pin(async move {
                    let (pod, node, active) = *args;
                    let guest = indices.load(&mut *store, &instance)?;
                    guest.call_admit(&mut *store, pod, node, active).await
                })
            },
        )
        .await
    }
}
