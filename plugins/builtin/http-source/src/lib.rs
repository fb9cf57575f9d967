//! Pods from a manifest URL, as the kubelet's http source: fetched every
//! `check-frequency-ms`, a Pod or PodList in YAML or JSON. An unchanged body
//! gives the same snapshot without decoding again. A non-200 answer, a body
//! over 10 MB or one that does not decode is an error that changes nothing:
//! the agent keeps the last good pods.
//!
//! The host grants this plugin one address (`connect-to`, resolved by the
//! agent from the URL); its deadline bounds each fetch.

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Mutex;

use pod_manifest::{Origin, read_manifest};
use serde::Deserialize;
use wasmlet_plugin_sdk::pod_source::{Error, Guest, Snapshot, SourcePod, changes, host};

const MAX_BODY: usize = 10 << 20;

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Settings {
    url: String,
    /// `ip:port` to connect to (the URL's host, resolved by the agent).
    connect_to: String,
    #[serde(default)]
    header: BTreeMap<String, Vec<String>>,
    #[serde(default = "twenty_seconds")]
    check_frequency_ms: u32,
}

fn twenty_seconds() -> u32 {
    20_000
}

/// The last body and what it gave, so an unchanged body is not decoded again.
struct Last {
    body: Vec<u8>,
    snapshot: Snapshot,
}

static STATE: Mutex<Option<Option<Last>>> = Mutex::new(None);

struct HttpSource;

impl Guest for HttpSource {
    fn next_snapshot() -> Result<Snapshot, Error> {
        let settings: Settings = host::typed_settings()?;
        let mut state = STATE.lock().unwrap_or_else(|p| p.into_inner());
        if state.is_some() {
            changes::wait(settings.check_frequency_ms);
        }
        let last = state.get_or_insert(None);
        let body = fetch(&settings).map_err(Error::Failed)?;
        if let Some(last) = last.as_ref()
            && last.body == body
        {
            return Ok(clone(&last.snapshot));
        }
        let text = String::from_utf8(body.clone())
            .map_err(|_| Error::Failed(format!("{}: the body is not UTF-8", settings.url)))?;
        let pods = read_manifest(&text, &host::node_name(), Origin::Url(&settings.url))
            .map_err(|e| Error::Failed(format!("{}: {e}", settings.url)))?;
        let mut snapshot = Snapshot {
            pods: Vec::new(),
            problems: Vec::new(),
        };
        for pod in pods {
            let json = serde_json::to_string(&pod).map_err(|e| Error::Failed(e.to_string()))?;
            snapshot.pods.push(SourcePod {
                json,
                origin: settings.url.clone(),
            });
        }
        *last = Some(Last {
            body,
            snapshot: clone(&snapshot),
        });
        Ok(snapshot)
    }
}

fn clone(s: &Snapshot) -> Snapshot {
    Snapshot {
        pods: s
            .pods
            .iter()
            .map(|p| SourcePod {
                json: p.json.clone(),
                origin: p.origin.clone(),
            })
            .collect(),
        problems: Vec::new(),
    }
}

/// `(host header, path)` of an `http://` URL.
pub fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("{url}: only http:// URLs are supported"))?;
    Ok(match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    })
}

/// GETs the URL; Ok(body) only for a 200 with a body within the cap.
fn fetch(settings: &Settings) -> Result<Vec<u8>, String> {
    let url = &settings.url;
    let (authority, path) = split_url(url)?;
    let mut request = format!(
        "GET {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: wasmlet\r\nAccept: application/json, application/yaml, */*\r\nConnection: close\r\n"
    );
    for (name, values) in &settings.header {
        for value in values {
            request.push_str(&format!("{name}: {value}\r\n"));
        }
    }
    request.push_str("\r\n");
    let mut conn = TcpStream::connect(settings.connect_to.as_str())
        .map_err(|e| format!("{url}: connecting to {}: {e}", settings.connect_to))?;
    conn.write_all(request.as_bytes())
        .map_err(|e| format!("{url}: sending the request: {e}"))?;
    let mut response = Vec::new();
    // Headers plus the capped body; one byte more tells that the cap was passed.
    conn.take((MAX_BODY + 64 * 1024 + 1) as u64)
        .read_to_end(&mut response)
        .map_err(|e| format!("{url}: reading the response: {e}"))?;
    parse_response(url, &response)
}

/// The body of a complete HTTP/1.1 response, if it is a 200.
pub fn parse_response(url: &str, response: &[u8]) -> Result<Vec<u8>, String> {
    let end = response
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("{url}: not an HTTP response"))?;
    let head = String::from_utf8_lossy(&response[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next().unwrap_or_default();
    let code = status.split_whitespace().nth(1).unwrap_or_default();
    if code != "200" {
        let said = status.split_once(' ').map_or(status, |(_, rest)| rest);
        return Err(format!("{url}: HTTP status {}", said.trim()));
    }
    let header = |name: &str| {
        head.split("\r\n").skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    };
    let raw = &response[end + 4..];
    let body = if header("transfer-encoding").is_some_and(|t| t.eq_ignore_ascii_case("chunked")) {
        dechunk(raw).ok_or_else(|| format!("{url}: a broken chunked body"))?
    } else if let Some(length) = header("content-length") {
        let length: usize = length
            .parse()
            .map_err(|_| format!("{url}: Content-Length {length:?}"))?;
        if length > MAX_BODY {
            return Err(format!("{url}: the body ({length} bytes) is over 10 MB"));
        }
        raw.get(..length)
            .ok_or_else(|| format!("{url}: the body ended early"))?
            .to_vec()
    } else {
        raw.to_vec()
    };
    if body.len() > MAX_BODY {
        return Err(format!("{url}: the body is over 10 MB"));
    }
    Ok(body)
}

fn dechunk(mut raw: &[u8]) -> Option<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&raw[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        raw = &raw[line_end + 2..];
        if size == 0 {
            return Some(body);
        }
        body.extend_from_slice(raw.get(..size)?);
        if body.len() > MAX_BODY {
            return Some(body); // the caller reports the cap
        }
        raw = raw.get(size + 2..)?;
    }
}

wasmlet_plugin_sdk::pod_source::export_pod_source!(HttpSource);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_plain_and_chunked_bodies_and_refuses_the_rest() {
        let ok = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
        assert_eq!(parse_response("u", ok), Ok(b"hello".to_vec()));
        let chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nhel\r\n2\r\nlo\r\n0\r\n\r\n";
        assert_eq!(parse_response("u", chunked), Ok(b"hello".to_vec()));
        let missing = b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
        assert!(parse_response("u", missing).is_err_and(|e| e.contains("404")));
        let huge = b"HTTP/1.1 200 OK\r\nContent-Length: 20000000\r\n\r\n";
        assert!(parse_response("u", huge).is_err_and(|e| e.contains("over 10 MB")));
    }

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("http://10.0.0.1:8080/a/b?c"),
            Ok(("10.0.0.1:8080", "/a/b?c"))
        );
        assert_eq!(split_url("http://host"), Ok(("host", "/")));
        assert!(split_url("https://host/").is_err());
    }
}
