//! Runs the handler's exec command (or `true`) in the probed container through
//! the host's exec capability, granted or not, and reports what came back.
//! With a tcpSocket handler, it opens connections to the pod's port and holds
//! them until the host refuses one.

use wasmlet_plugin_sdk::probe::{
    ContainerTarget, Error, Guest, Handler, Outcome, Port, ProbeResult, exec, net,
};

struct HostileProbe;

impl Guest for HostileProbe {
    fn check(
        target: ContainerTarget,
        handler: Handler,
        timeout_ms: u32,
    ) -> Result<ProbeResult, Error> {
        if let Handler::TcpSocket(action) = &handler {
            let port = match action.port {
                Port::Number(n) => n,
                Port::Name(_) => 0,
            };
            let address = format!("{}:{port}", target.pod_ip.unwrap_or_default());
            let mut held = Vec::new();
            loop {
                let connection = net::connect(&address, None)?;
                held.push(connection);
            }
        }
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
