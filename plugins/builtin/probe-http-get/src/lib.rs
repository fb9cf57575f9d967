//! httpGet probes, as the kubelet's: a status from 200 to 399 is success.
//! Redirects on the same host are followed (up to 10); one to another host is
//! not, and counts as success with a warning in the message (the host turns
//! it into a ProbeWarning event). Only the first 10 KiB of a body are read.

use wasmlet_plugin_sdk::http::{self, BodyLimit, Followed};
use wasmlet_plugin_sdk::probe::{ContainerTarget, Error, Guest, Handler, Outcome, ProbeResult};

/// The kubelet's is `kube-probe/<major>.<minor>`.
const USER_AGENT: &str = "kube-probe/wasmlet";
const READ_BODY: usize = 10 << 10;

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
        let request = action.request(&target, USER_AGENT)?;
        let url = request.url();
        // The host cuts the call at the probe's timeout.
        Ok(
            match http::get_following(request, BodyLimit::Truncate(READ_BODY)) {
                Err(e) => result(Outcome::Failure, format!("Get \"{url}\": {e}")),
                Ok(Followed { response, offsite }) if (200..400).contains(&response.status) => {
                    match offsite {
                        Some(location) => result(
                            Outcome::Success,
                            format!(
                                "Probe terminated redirects, Response status {}: redirect to {location} not followed",
                                response.status
                            ),
                        ),
                        None => result(Outcome::Success, ""),
                    }
                }
                Ok(Followed { response, .. }) => result(
                    Outcome::Failure,
                    format!("HTTP probe failed with statuscode: {}", response.status),
                ),
            },
        )
    }
}

wasmlet_plugin_sdk::probe::export_probe!(HttpGetProbe);
