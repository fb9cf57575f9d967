//! `wasmlet:plugin/exec`: a command in the container the call is about,
//! through the agent's runtime, if the plugin is granted exec.

use std::time::Duration;

use wasmlet_core::ErrorKind;

use crate::bindings::{exec, types};
use crate::state::CallState;

/// What the guest gets of an exec's stdout and of its stderr: enough for any
/// probe or hook (the kubelet keeps 10 KiB of probe output), however much
/// the container printed.
pub(crate) const MAX_EXEC_OUTPUT: usize = 64 * 1024;

impl exec::Host for CallState {
    async fn run(
        &mut self,
        command: Vec<String>,
        timeout_ms: u32,
    ) -> Result<exec::ExecOutput, types::Error> {
        if !self.plugin.grant.exec {
            return Err(self
                .grants
                .refuse("exec is not granted to this plugin".into()));
        }
        let Some(target) = self.grants.target.clone() else {
            return Err(self
                .grants
                .refuse("exec: this call concerns no container".into()));
        };
        let Some(runner) = self.host.exec.clone() else {
            return Err(types::Error::Failed(
                "exec: the agent has no container runtime".into(),
            ));
        };
        let timeout = Duration::from_millis(u64::from(timeout_ms.max(1)));
        match runner.exec(&target.container_id, &command, timeout).await {
            Ok(mut out) => {
                out.stdout.truncate(MAX_EXEC_OUTPUT);
                out.stderr.truncate(MAX_EXEC_OUTPUT);
                Ok(exec::ExecOutput {
                    stdout: out.stdout,
                    stderr: out.stderr,
                    exit_code: out.exit_code,
                })
            }
            Err(e) if e.kind == ErrorKind::DeadlineExceeded => Err(types::Error::Failed(format!(
                "exec: command still running after {timeout_ms} ms"
            ))),
            Err(e) => Err(types::Error::Failed(format!("exec: {e}"))),
        }
    }
}
