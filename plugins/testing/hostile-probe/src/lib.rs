//! Runs the handler's exec command (or `true`) in the probed container through
//! the host's exec capability, granted or not, and reports what came back.

use wasmlet_plugin_sdk::probe::{
    ContainerTarget, Error, Guest, Handler, Outcome, ProbeResult, exec,
};

struct HostileProbe;

impl Guest for HostileProbe {
    fn check(
        _target: ContainerTarget,
        handler: Handler,
        timeout_ms: u32,
    ) -> Result<ProbeResult, Error> {
        let command = match handler {
            Handler::Exec(command) => command,
            _ => vec!["true".to_string()],
        };
        let out = exec::run(&command, timeout_ms)?;
        Ok(ProbeResult {
            outcome: if out.exit_code == 0 {
                Outcome::Success
            } else {
                Outcome::Failure
            },
            message: format!(
                "exit {}: {}",
                out.exit_code,
                String::from_utf8_lossy(&out.stdout)
            )
            .trim_end()
            .to_owned(),
        })
    }
}

wasmlet_plugin_sdk::probe::export_probe!(HostileProbe);
