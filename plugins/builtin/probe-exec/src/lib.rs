//! exec probes, as the kubelet's: the command runs in the probed container;
//! exit 0 is success, anything else (or outliving the timeout) is failure.

use wasmlet_plugin_sdk::probe::{
    ContainerTarget, Error, Guest, Handler, Outcome, ProbeResult, exec,
};

struct ExecProbe;

impl Guest for ExecProbe {
    fn check(
        _target: ContainerTarget,
        handler: Handler,
        timeout_ms: u32,
    ) -> Result<ProbeResult, Error> {
        let Handler::Exec(command) = handler else {
            return Err(Error::InvalidInput(
                "probe-exec runs exec probes only".into(),
            ));
        };
        if command.is_empty() {
            return Err(Error::InvalidInput("exec.command is empty".into()));
        }
        Ok(match exec::run(&command, timeout_ms) {
            Ok(out) if out.exit_code == 0 => ProbeResult {
                outcome: Outcome::Success,
                message: String::new(),
            },
            Ok(out) => ProbeResult {
                outcome: Outcome::Failure,
                message: format!(
                    "command {command:?} exited with {}: {}",
                    out.exit_code,
                    String::from_utf8_lossy(&out.stdout).trim_end()
                ),
            },
            Err(Error::Denied(why)) => return Err(Error::Denied(why)),
            Err(e) => ProbeResult {
                outcome: Outcome::Failure,
                message: format!("command {command:?} failed: {e:?}"),
            },
        })
    }
}

wasmlet_plugin_sdk::probe::export_probe!(ExecProbe);
