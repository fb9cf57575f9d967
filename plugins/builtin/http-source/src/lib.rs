//! Pods from a manifest URL, as the kubelet's http source: fetched every
//! `check-frequency-ms`, a Pod or PodList in YAML or JSON. An unchanged body
//! gives the same snapshot without decoding again. A non-200 answer, a body
//! over 10 MB or one that does not decode is an error that changes nothing:
//! the agent keeps the last good pods.
//!
//! The host grants this plugin one address (`connect-to`, resolved by the
//! agent from the URL) and makes the request (`wasi:http`); its deadline
//! bounds each fetch. An `https://` URL's certificate must chain to a root
//! the node trusts and name the URL's host.

use std::sync::Mutex;

use pod_manifest::settings::{HttpSourceSettings, ManifestUrl};
use pod_manifest::{Origin, read_manifest};
use wasmlet_plugin_sdk::http::{self, BodyLimit};
use wasmlet_plugin_sdk::pod_source::{Error, Guest, Snapshot, SourcePod, changes, host};

const MAX_BODY: usize = 10 << 20;

/// The last body and what it gave, so an unchanged body is not decoded again.
struct Last {
    body: Vec<u8>,
    snapshot: Snapshot,
}

static STATE: Mutex<Option<Option<Last>>> = Mutex::new(None);

struct HttpSource;

impl Guest for HttpSource {
    fn next_snapshot() -> Result<Snapshot, Error> {
        let settings: HttpSourceSettings = host::typed_settings()?;
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

/// GETs the URL; Ok(body) only for a 200 with a body within the cap.
fn fetch(settings: &HttpSourceSettings) -> Result<Vec<u8>, String> {
    let url = &settings.url;
    let parts = ManifestUrl::parse(url)?;
    // From the address the agent resolved, under the URL's own name (the
    // Host header, and the certificate's name for https).
    let mut request = http::Request {
        method: http::Method::Get,
        scheme: if parts.https {
            http::Scheme::Https
        } else {
            http::Scheme::Http
        },
        authority: settings.connect_to.clone(),
        path: parts.path,
        headers: vec![("Host".into(), parts.authority)],
        body: Vec::new(),
        timeout: None,
    };
    request.headers.extend(
        settings
            .header
            .iter()
            .flat_map(|(name, values)| values.iter().map(|v| (name.clone(), v.clone()))),
    );
    let response =
        http::send(&request, BodyLimit::Refuse(MAX_BODY)).map_err(|e| format!("{url}: {e}"))?;
    if response.status != 200 {
        return Err(format!("{url}: HTTP status {}", response.status));
    }
    Ok(response.body)
}

wasmlet_plugin_sdk::pod_source::export_pod_source!(HttpSource);
