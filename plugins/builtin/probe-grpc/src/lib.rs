//! grpc probes, as the kubelet's: `grpc.health.v1.Health/Check` with the
//! optional service name; SERVING is success, any other answer or error is
//! failure. Speaks just enough HTTP/2 (prior knowledge, no TLS) for one
//! unary call: headers are sent as HPACK literals and the response's
//! headers are skipped; only its message is read.

use std::io::{BufReader, Read, Write};

use wasmlet_plugin_sdk::probe::{
    ContainerTarget, Error, Guest, Handler, Outcome, ProbeResult, net,
};

const PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
const DATA: u8 = 0;
const HEADERS: u8 = 1;
const RST_STREAM: u8 = 3;
const SETTINGS: u8 = 4;
const PING: u8 = 6;
const GOAWAY: u8 = 7;
const END_STREAM: u8 = 0x1;
const ACK: u8 = 0x1;
const END_HEADERS: u8 = 0x4;
const PADDED: u8 = 0x8;

fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut out = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    out.extend_from_slice(&stream.to_be_bytes());
    out.extend_from_slice(payload);
    out
}

/// An HPACK integer with an `n`-bit prefix whose high bits are `first`.
fn hpack_int(out: &mut Vec<u8>, first: u8, n: u32, mut value: usize) {
    let max = (1usize << n) - 1;
    if value < max {
        out.push(first | value as u8);
        return;
    }
    out.push(first | max as u8);
    value -= max;
    while value >= 128 {
        out.push((value % 128 + 128) as u8);
        value /= 128;
    }
    out.push(value as u8);
}

fn hpack_string(out: &mut Vec<u8>, text: &str) {
    hpack_int(out, 0, 7, text.len());
    out.extend_from_slice(text.as_bytes());
}

/// The request headers: static-table names, literal values, never indexed.
pub fn request_headers(authority: &str) -> Vec<u8> {
    let mut block = vec![0x83, 0x86]; // :method POST, :scheme http
    hpack_int(&mut block, 0, 4, 4); // :path
    hpack_string(&mut block, "/grpc.health.v1.Health/Check");
    hpack_int(&mut block, 0, 4, 1); // :authority
    hpack_string(&mut block, authority);
    hpack_int(&mut block, 0, 4, 31); // content-type
    hpack_string(&mut block, "application/grpc");
    block.push(0); // a new name
    hpack_string(&mut block, "te");
    hpack_string(&mut block, "trailers");
    block
}

/// A length-prefixed gRPC message holding HealthCheckRequest{service}.
pub fn request_message(service: &str) -> Vec<u8> {
    let mut proto = Vec::new();
    if !service.is_empty() {
        proto.push(0x0a); // field 1, length-delimited
        let mut len = service.len();
        while len >= 0x80 {
            proto.push((len as u8 & 0x7f) | 0x80);
            len >>= 7;
        }
        proto.push(len as u8);
        proto.extend_from_slice(service.as_bytes());
    }
    let mut message = vec![0];
    message.extend_from_slice(&(proto.len() as u32).to_be_bytes());
    message.extend_from_slice(&proto);
    message
}

/// HealthCheckResponse.status from a length-prefixed gRPC message.
pub fn response_status(message: &[u8]) -> Option<u64> {
    let len = u32::from_be_bytes(message.get(1..5)?.try_into().ok()?) as usize;
    let mut proto = message.get(5..5 + len)?;
    let mut status = 0; // proto3: a missing field is its zero value
    while let Some((&tag, rest)) = proto.split_first() {
        let (value, rest) = varint(rest)?;
        match tag {
            0x08 => status = value,
            t if t & 0x7 == 0 => {}
            t if t & 0x7 == 2 => {
                proto = rest.get(value as usize..)?;
                continue;
            }
            _ => return None,
        }
        proto = rest;
    }
    Some(status)
}

fn varint(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let mut value = 0u64;
    for (i, b) in bytes.iter().enumerate().take(10) {
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some((value, &bytes[i + 1..]));
        }
    }
    None
}

fn status_name(status: u64) -> &'static str {
    match status {
        1 => "SERVING",
        2 => "NOT_SERVING",
        3 => "SERVICE_UNKNOWN",
        _ => "UNKNOWN",
    }
}

/// Calls Check on `address` and returns the status it answered.
fn check(address: &str, service: &str) -> Result<u64, String> {
    let stream = net::Stream::connect(address).map_err(|e| format!("connecting: {e}"))?;
    // Frames are read in small pieces; each read of the stream is a host call.
    let mut conn = BufReader::with_capacity(16 * 1024, stream);
    let mut request = PREFACE.to_vec();
    request.extend(frame(SETTINGS, 0, 0, &[]));
    request.extend(frame(HEADERS, END_HEADERS, 1, &request_headers(address)));
    request.extend(frame(DATA, END_STREAM, 1, &request_message(service)));
    conn.get_mut()
        .write_all(&request)
        .map_err(|e| format!("sending: {e}"))?;
    let mut message = Vec::new();
    loop {
        let mut head = [0u8; 9];
        conn.read_exact(&mut head)
            .map_err(|e| format!("the connection ended: {e}"))?;
        let len = (usize::from(head[0]) << 16) | (usize::from(head[1]) << 8) | usize::from(head[2]);
        let (kind, flags) = (head[3], head[4]);
        let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
        if len > 1 << 20 {
            return Err("a frame over 1 MiB".into());
        }
        let mut payload = vec![0; len];
        conn.read_exact(&mut payload)
            .map_err(|e| format!("reading a frame: {e}"))?;
        match kind {
            SETTINGS if flags & ACK == 0 => {
                conn.get_mut()
                    .write_all(&frame(SETTINGS, ACK, 0, &[]))
                    .map_err(|e| format!("sending: {e}"))?;
            }
            PING if flags & ACK == 0 => {
                conn.get_mut()
                    .write_all(&frame(PING, ACK, 0, &payload))
                    .map_err(|e| format!("sending: {e}"))?;
            }
            GOAWAY => return Err("the server went away".into()),
            RST_STREAM if stream == 1 => return Err("the server reset the call".into()),
            DATA if stream == 1 => {
                let body = unpad(&payload, flags).ok_or("a bad DATA frame")?;
                message.extend_from_slice(body);
                if let Some(status) = response_status(&message) {
                    return Ok(status);
                }
            }
            HEADERS if stream == 1 && flags & END_STREAM != 0 => {
                // Trailers with no message before them: the call failed.
                return Err(
                    "the server answered with an error and no message (is grpc.health.v1 served?)"
                        .into(),
                );
            }
            _ => {}
        }
    }
}

fn unpad(payload: &[u8], flags: u8) -> Option<&[u8]> {
    if flags & PADDED == 0 {
        return Some(payload);
    }
    let pad = usize::from(*payload.first()?);
    payload.get(1..payload.len().checked_sub(pad)?)
}

struct GrpcProbe;

impl Guest for GrpcProbe {
    fn check(
        target: ContainerTarget,
        handler: Handler,
        _timeout_ms: u32,
    ) -> Result<ProbeResult, Error> {
        let Handler::Grpc(action) = handler else {
            return Err(Error::InvalidInput(
                "probe-grpc runs grpc probes only".into(),
            ));
        };
        let host = target
            .pod_ip
            .ok_or_else(|| Error::InvalidInput("the pod has no IP yet".into()))?;
        let address = if host.contains(':') {
            format!("[{host}]:{}", action.port)
        } else {
            format!("{host}:{}", action.port)
        };
        let service = action.service.unwrap_or_default();
        Ok(match check(&address, &service) {
            Ok(1) => ProbeResult {
                outcome: Outcome::Success,
                message: String::new(),
            },
            Ok(status) => ProbeResult {
                outcome: Outcome::Failure,
                message: format!(
                    "service unhealthy (responded with \"{}\")",
                    status_name(status)
                ),
            },
            Err(e) => ProbeResult {
                outcome: Outcome::Failure,
                message: format!("grpc probe to {address} failed: {e}"),
            },
        })
    }
}

wasmlet_plugin_sdk::probe::export_probe!(GrpcProbe);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_round_trip() {
        assert_eq!(request_message(""), vec![0, 0, 0, 0, 0]);
        assert_eq!(
            request_message("db"),
            vec![0, 0, 0, 0, 4, 0x0a, 2, b'd', b'b']
        );
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 1]), Some(1));
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08, 2]), Some(2));
        assert_eq!(response_status(&[0, 0, 0, 0, 0]), Some(0));
        assert_eq!(response_status(&[0, 0, 0, 0, 2, 0x08]), None, "incomplete");
    }

    #[test]
    fn hpack_integers_use_their_prefix() {
        let mut out = Vec::new();
        hpack_int(&mut out, 0, 4, 31);
        assert_eq!(out, [0x0f, 0x10]);
        let mut out = Vec::new();
        hpack_int(&mut out, 0, 7, 300);
        assert_eq!(out, [0x7f, 0xad, 0x01]);
    }
}
