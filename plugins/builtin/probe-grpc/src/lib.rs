//! grpc probes, as the kubelet's: `grpc.health.v1.Health/Check` on the pod's
//! IP with the optional service name; SERVING is success, any other answer or
//! error is failure, with the kubelet's messages. The call goes through
//! `wasi:http` (the host speaks HTTP/2 for `application/grpc`); the messages
//! are generated from grpc's health.proto.

use std::time::Duration;

use prost::Message;
use wasmlet_plugin_sdk::http::{self, BodyLimit, HttpError, Method, Scheme};
use wasmlet_plugin_sdk::probe::{ContainerTarget, Error, Guest, Handler, Outcome, ProbeResult};

#[allow(clippy::all, unused_qualifications)]
mod health {
    include!(concat!(env!("OUT_DIR"), "/grpc.health.v1.rs"));
}

use health::health_check_response::ServingStatus;
use health::{HealthCheckRequest, HealthCheckResponse};

const CHECK: &str = "/grpc.health.v1.Health/Check";
/// A health answer is a few bytes; anything near this is not one.
const MAX_RESPONSE: usize = 64 << 10;

/// gRPC's length-prefixed message: an uncompressed flag, the length, the bytes.
pub fn frame(message: &impl Message) -> Vec<u8> {
    let body = message.encode_to_vec();
    let mut framed = Vec::with_capacity(5 + body.len());
    framed.push(0);
    framed.extend_from_slice(&u32::try_from(body.len()).unwrap_or(u32::MAX).to_be_bytes());
    framed.extend_from_slice(&body);
    framed
}

/// The one message of a unary response.
pub fn unframe<M: Message + Default>(body: &[u8]) -> Result<M, String> {
    let (head, rest) = body
        .split_at_checked(5)
        .ok_or("the response holds no message")?;
    if head[0] != 0 {
        return Err("the response message is compressed".into());
    }
    let len = u32::from_be_bytes([head[1], head[2], head[3], head[4]]) as usize;
    let message = rest.get(..len).ok_or("the response message is cut short")?;
    M::decode(message).map_err(|e| format!("the response message: {e}"))
}

/// gRPC status codes by number, as grpc-go prints them.
fn code_name(code: u32) -> &'static str {
    const NAMES: [&str; 17] = [
        "OK",
        "Canceled",
        "Unknown",
        "InvalidArgument",
        "DeadlineExceeded",
        "NotFound",
        "AlreadyExists",
        "PermissionDenied",
        "ResourceExhausted",
        "FailedPrecondition",
        "Aborted",
        "OutOfRange",
        "Unimplemented",
        "Internal",
        "Unavailable",
        "DataLoss",
        "Unauthenticated",
    ];
    NAMES.get(code as usize).copied().unwrap_or("Unknown")
}

fn failure(message: String) -> ProbeResult {
    ProbeResult {
        outcome: Outcome::Failure,
        message,
    }
}

/// One Check, judged as the kubelet's gRPC prober judges it.
fn probe(address: &str, service: String, timeout: Duration) -> ProbeResult {
    let request = http::Request {
        method: Method::Post,
        scheme: Scheme::Http,
        authority: address.to_owned(),
        path: CHECK.into(),
        headers: vec![("content-type".into(), "application/grpc".into())],
        body: frame(&HealthCheckRequest { service }),
        timeout: Some(timeout),
    };
    let response = match http::send(&request, BodyLimit::Refuse(MAX_RESPONSE)) {
        Ok(response) => response,
        Err(e @ HttpError::Denied { .. }) => return failure(e.to_string()),
        Err(e) => {
            return failure(format!(
                "timeout: failed to connect service \"{address}\" within {}s: {e}",
                timeout.as_secs()
            ));
        }
    };
    // The status is in the trailers, or in the headers of a trailers-only answer.
    let status = response
        .trailer("grpc-status")
        .or(response.header("grpc-status"))
        .and_then(|s| s.parse::<u32>().ok());
    let detail = response
        .trailer("grpc-message")
        .or(response.header("grpc-message"))
        .unwrap_or_default();
    match status {
        Some(0) => {}
        Some(12) => {
            return failure(format!(
                "this server does not implement the grpc health protocol (grpc.health.v1.Health): {detail}"
            ));
        }
        Some(4) => {
            return failure(format!(
                "timeout: health rpc did not complete within {}s",
                timeout.as_secs()
            ));
        }
        Some(code) => {
            return failure(format!(
                "error: health rpc probe failed: rpc error: code = {} desc = {detail}",
                code_name(code)
            ));
        }
        None => {
            return failure(format!(
                "error: health rpc probe failed: HTTP status {} with no grpc-status",
                response.status
            ));
        }
    }
    match unframe::<HealthCheckResponse>(&response.body) {
        Ok(answer) if answer.status() == ServingStatus::Serving => ProbeResult {
            outcome: Outcome::Success,
            message: String::new(),
        },
        Ok(answer) => failure(format!(
            "service unhealthy (responded with \"{}\")",
            answer.status().as_str_name()
        )),
        Err(e) => failure(format!("error: health rpc probe failed: {e}")),
    }
}

struct GrpcProbe;

impl Guest for GrpcProbe {
    fn check(
        target: ContainerTarget,
        handler: Handler,
        timeout_ms: u32,
    ) -> Result<ProbeResult, Error> {
        let Handler::Grpc(action) = handler else {
            return Err(Error::InvalidInput(
                "probe-grpc runs grpc probes only".into(),
            ));
        };
        let host = target
            .pod_ip
            .ok_or_else(|| Error::InvalidInput("the pod has no IP yet".into()))?;
        let address = http::authority(&host, action.port);
        let service = action.service.unwrap_or_default();
        Ok(probe(
            &address,
            service,
            Duration::from_millis(u64::from(timeout_ms)),
        ))
    }
}

wasmlet_plugin_sdk::probe::export_probe!(GrpcProbe);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip_through_the_grpc_frame() {
        assert_eq!(
            frame(&HealthCheckRequest {
                service: String::new()
            }),
            vec![0, 0, 0, 0, 0]
        );
        assert_eq!(
            frame(&HealthCheckRequest {
                service: "db".into()
            }),
            vec![0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']
        );
        let serving: HealthCheckResponse = unframe(&[0, 0, 0, 0, 2, 0x08, 1]).expect("decodes");
        assert_eq!(serving.status(), ServingStatus::Serving);
        let empty: HealthCheckResponse = unframe(&[0, 0, 0, 0, 0]).expect("decodes");
        assert_eq!(empty.status(), ServingStatus::Unknown, "proto3 zero value");
        assert!(
            unframe::<HealthCheckResponse>(&[0, 0, 0, 0, 2, 0x08]).is_err(),
            "cut short"
        );
        assert!(
            unframe::<HealthCheckResponse>(&[1, 0, 0, 0, 0]).is_err(),
            "compressed"
        );
    }
}
