//! Runs `true` in the probed container through the host's exec capability,
//! granted or not, and reports what the host said.

use wasmlet_plugin_sdk::probe::{
    ContainerTarget, Error, Guest, Handler, Outcome, ProbeResult, exec,
};

struct HostileProbe;

impl Guest for HostileProbe {
    fn check(
        _target: ContainerTarget,
        _handler: Handler,
        timeout_ms: u32,
    ) -> Result<ProbeResult, Error> {
        let out = exec::run(&["true".to_string()], timeout_ms)?;
        Ok(ProbeResult {
            outcome: if out.exit_code == 0 {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            message: format!("exit {}", out.exit_code),
        })
    }
}

wasmlet_plugin_sdk::probe::export_probe!(HostileProbe);
