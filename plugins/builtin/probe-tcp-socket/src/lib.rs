//! tcpSocket probes, as the kubelet's: a connection that opens is success.

use wasmlet_plugin_sdk::probe::{
    ContainerTarget, Error, Guest, Handler, Outcome, Port, ProbeResult, net,
};

struct TcpSocketProbe;

impl Guest for TcpSocketProbe {
    fn check(
        target: ContainerTarget,
        handler: Handler,
        _timeout_ms: u32,
    ) -> Result<ProbeResult, Error> {
        let Handler::TcpSocket(action) = handler else {
            return Err(Error::InvalidInput(
                "probe-tcp-socket runs tcpSocket probes only".into(),
            ));
        };
        let (number, name) = match &action.port {
            Port::Number(n) => (Some(*n), None),
            Port::Name(name) => (None, Some(name.as_str())),
        };
        let ports = target
            .ports
            .iter()
            .map(|p| (p.name.as_deref(), p.container_port));
        let (host, port) = http_client::resolve_target(
            action.host.as_deref(),
            target.pod_ip.as_deref(),
            number,
            name,
            ports,
        )
        .map_err(Error::InvalidInput)?;
        let address = http_client::authority(&host, port);
        Ok(match net::Stream::connect(&address) {
            Ok(_) => ProbeResult {
                outcome: Outcome::Success,
                message: String::new(),
            },
            Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => {
                return Err(Error::Denied(e.to_string()));
            }
            Err(e) => ProbeResult {
                outcome: Outcome::Failure,
                message: format!("dial tcp {address}: {e}"),
            },
        })
    }
}

wasmlet_plugin_sdk::probe::export_probe!(TcpSocketProbe);
