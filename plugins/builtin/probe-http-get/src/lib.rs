//! httpGet probes, as the kubelet's: a status from 200 to 399 is success. A
//! redirect to another host is not followed and counts as success, with a
//! warning in the message (the host turns it into a ProbeWarning event).

use wasmlet_plugin_sdk::probe::{
    ContainerTarget, Error, Guest, Handler, Outcome, ProbeResult, net,
};

struct HttpGetProbe;

fn result(outcome: Outcome, message: impl Into<String>) -> ProbeResult {
    ProbeResult {
        outcome,
        message: message.into(),
    }
}

impl Guest for HttpGetProbe {
    fn check(
        target: ContainerTarget,
        handler: Handler,
        _timeout_ms: u32,
    ) -> Result<ProbeResult, Error> {
        let Handler::HttpGet(action) = handler else {
            return Err(Error::InvalidInput(
                "probe-http-get runs httpGet probes only".into(),
            ));
        };
        let tls = http_client::wants_tls(&action.scheme).map_err(Error::InvalidInput)?;
        let (host, port) = target.resolve(action.host.as_deref(), &action.port)?;
        let headers = action.header_pairs();
        Ok(
            match http_client::http_check(
                |a| net::Stream::connect_http(a, tls),
                &host,
                port,
                &action.path,
                &headers,
            ) {
                Err(e) => result(
                    Outcome::Failure,
                    format!(
                        "Get \"{}://{host}:{port}{}\": {e}",
                        if tls { "https" } else { "http" },
                        action.path
                    ),
                ),
                Ok(seen) if (200..400).contains(&seen.status) => match seen.offsite_redirect {
                    Some(location) => result(
                        Outcome::Success,
                        format!(
                            "Probe terminated redirects, Response status {}: redirect to {location} not followed",
                            seen.status
                        ),
                    ),
                    None => result(Outcome::Success, ""),
                },
                Ok(seen) => result(
                    Outcome::Failure,
                    format!("HTTP probe failed with statuscode: {}", seen.status),
                ),
            },
        )
    }
}

wasmlet_plugin_sdk::probe::export_probe!(HttpGetProbe);
