//! tcpSocket probes, as the kubelet's: a connection that opens is success.

use wasmlet_plugin_sdk::probe::{
    ContainerTarget, Error, Guest, Handler, Outcome, ProbeResult, net,
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
        let (host, port) = target.resolve(action.host.as_deref(), &action.port)?;
        let address = wasmlet_plugin_sdk::http::authority(&host, port);
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
