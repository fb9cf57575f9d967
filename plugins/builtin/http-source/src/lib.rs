//! Pods from a manifest URL, as the kubelet's http source: fetched every
//! `check-frequency-ms`, a Pod or PodList in YAML or JSON. An unchanged body
//! gives the same snapshot without decoding again. A non-200 answer, a body
//! over 10 MB or one that does not decode is an error that changes nothing:
//! the agent keeps the last good pods.
//!
//! The host grants this plugin one address (`connect-to`, resolved by the
//! agent from the URL); its deadline bounds each fetch. An `https://` URL's
//! certificate must chain to a root the node trusts and name the URL's host.

use std::collections::BTreeMap;
use std::sync::Mutex;

use pod_manifest::{Origin, read_manifest};
use serde::Deserialize;
use wasmlet_plugin_sdk::pod_source::{Error, Guest, Snapshot, SourcePod, changes, host, net};

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

/// A manifest URL taken apart.
#[derive(Debug, PartialEq, Eq)]
pub struct Url<'a> {
    pub tls: bool,
    /// `host[:port]`, for the Host header.
    pub authority: &'a str,
    /// The host alone (no port, no brackets): the name the certificate must have.
    pub host: &'a str,
    pub path: &'a str,
}

/// Takes an `http://` or `https://` URL apart.
pub fn split_url(url: &str) -> Result<Url<'_>, String> {
    let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
        (true, rest)
    } else if let Some(rest) = url.strip_prefix("http://") {
        (false, rest)
    } else {
        return Err(format!(
            "{url}: only http:// and https:// URLs are supported"
        ));
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let host = match authority.strip_prefix('[') {
        Some(v6) => v6.split(']').next().unwrap_or_default(),
        None => authority.split(':').next().unwrap_or_default(),
    };
    Ok(Url {
        tls,
        authority,
        host,
        path,
    })
}

/// GETs the URL; Ok(body) only for a 200 with a body within the cap.
fn fetch(settings: &Settings) -> Result<Vec<u8>, String> {
    let url = &settings.url;
    let parts = split_url(url)?;
    let headers: Vec<(String, String)> = settings
        .header
        .iter()
        .flat_map(|(name, values)| values.iter().map(|v| (name.clone(), v.clone())))
        .collect();
    // The certificate is checked against the node's trusted roots, for the
    // URL's host.
    let conn = if parts.tls {
        let tls = net::Tls {
            server_name: Some(parts.host.to_owned()),
            insecure_skip_verify: false,
        };
        net::Stream::connect_tls(&settings.connect_to, tls)
    } else {
        net::Stream::connect(&settings.connect_to)
    }
    .map_err(|e| format!("{url}: connecting to {}: {e}", settings.connect_to))?;
    let request = http_client::Get {
        host: parts.authority,
        path: parts.path,
        headers: &headers,
        max_body: MAX_BODY,
        truncate: false,
    };
    let response = http_client::get(conn, &request).map_err(|e| format!("{url}: {e}"))?;
    if response.status != 200 {
        return Err(format!("{url}: HTTP status {}", response.status));
    }
    Ok(response.body)
}

wasmlet_plugin_sdk::pod_source::export_pod_source!(HttpSource);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_urls() {
        assert_eq!(
            split_url("http://10.0.0.1:8080/a/b?c"),
            Ok(Url {
                tls: false,
                authority: "10.0.0.1:8080",
                host: "10.0.0.1",
                path: "/a/b?c"
            })
        );
        let secure = split_url("https://manifests.example").expect("https");
        assert_eq!(
            (secure.tls, secure.authority, secure.host, secure.path),
            (true, "manifests.example", "manifests.example", "/")
        );
        assert_eq!(split_url("https://[::1]:8443/p").map(|u| u.host), Ok("::1"));
        assert!(split_url("ftp://host/").is_err());
    }
}
