//! Runs the handler's exec command (or `true`) in the probed container through
//! the host's exec capability, granted or not, and reports what came back.
//! With a tcpSocket handler, it opens connections to the pod's port and holds
//! them until the host refuses one: through the `net` import, or first half
//! through WASI sockets when the port is the container's port named
//! `wasi-first`. With the port named `listen`, it tries to listen on it
//! instead; with `hold`, it keeps what it holds 300 ms longer after the
//! refusal. (The mode is the port's name because the handler's `host` is
//! the host's: it resolves it and grants exactly that address.)

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
            let (mode, port) = match &action.port {
                Port::Number(n) => ("", *n),
                Port::Name(name) => {
                    let port = target
                        .ports
                        .iter()
                        .find(|p| p.name.as_deref() == Some(name));
                    (name.as_str(), port.map_or(0, |p| p.container_port))
                }
            };
            let address = format!("{}:{port}", target.pod_ip.unwrap_or_default());
            if mode == "listen" {
                return match std::net::TcpListener::bind(format!("0.0.0.0:{port}")) {
                    Ok(_) => Ok(ProbeResult {
                        outcome: Outcome::Success,
                        message: format!("listening on {port}"),
                    }),
                    Err(e) => Err(Error::Failed(format!("listen on {port}: {e}"))),
                };
            }
            let mut wasi = Vec::new();
            if mode == "wasi-first" {
                for _ in 0..8 {
                    let stream = std::net::TcpStream::connect(&address)
                        .map_err(|e| Error::Failed(format!("wasi connect {address}: {e}")))?;
                    wasi.push(stream);
                }
            }
            let mut held = Vec::new();
            loop {
                match net::connect(&address, None) {
                    Ok(connection) => held.push(connection),
                    Err(e) => {
                        if mode == "hold" {
                            std::thread::sleep(std::time::Duration::from_millis(300));
                        }
                        return Err(Error::Failed(format!(
                            "held {} wasi + {} net: {e:?}",
                            wasi.len(),
                            held.len()
                        )));
                    }
                }
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
                "exit {} (got {} bytes): {}",
                out.exit_code,
                out.stdout.len(),
                String::from_utf8_lossy(&out.stdout)
            )
            .trim_end()
            .to_owned(),
        })
    }
}

wasmlet_plugin_sdk::probe::export_probe!(HostileProbe);
