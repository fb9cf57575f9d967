//! Static pods from a directory, as the kubelet's file source: every file not
//! starting with `.` holds YAML (several documents) or JSON, a Pod or a
//! PodList. A bad file is reported and skipped; the others still count.
//!
//! The directory is re-read when the host signals a change in it, and at
//! least every `check-frequency-ms`.

use pod_manifest::{Origin, read_manifest};
use serde::Deserialize;
use wasmlet_plugin_sdk::pod_source::{Error, Guest, Problem, Snapshot, SourcePod, changes, host};

use std::sync::atomic::{AtomicBool, Ordering};

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct Settings {
    path: String,
    #[serde(default = "twenty_seconds")]
    check_frequency_ms: u32,
}

fn twenty_seconds() -> u32 {
    20_000
}

static STARTED: AtomicBool = AtomicBool::new(false);

struct FileSource;

impl Guest for FileSource {
    fn next_snapshot() -> Result<Snapshot, Error> {
        let settings: Settings = host::typed_settings()?;
        if STARTED.swap(true, Ordering::Relaxed) {
            // Woken by a change or the period: either way, read everything again.
            changes::wait(settings.check_frequency_ms);
        }
        scan(&settings.path, &host::node_name())
    }
}

fn scan(dir: &str, node_name: &str) -> Result<Snapshot, Error> {
    let entries = std::fs::read_dir(dir)
        .map_err(|e| Error::Failed(format!("reading static pod directory {dir}: {e}")))?;
    let mut paths: Vec<_> = entries
        .filter_map(Result::ok)
        .filter(|e| !e.file_name().to_string_lossy().starts_with('.'))
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .map(|e| e.path())
        .collect();
    paths.sort();
    let mut snapshot = Snapshot {
        pods: Vec::new(),
        problems: Vec::new(),
    };
    for path in paths {
        let origin = path.to_string_lossy().into_owned();
        let pods = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading: {e}"))
            .and_then(|text| read_manifest(&text, node_name, Origin::File(&origin)));
        match pods {
            Ok(pods) => {
                for pod in pods {
                    match serde_json::to_string(&pod) {
                        Ok(json) => snapshot.pods.push(SourcePod {
                            json,
                            origin: origin.clone(),
                        }),
                        Err(e) => snapshot.problems.push(Problem {
                            origin: origin.clone(),
                            message: e.to_string(),
                        }),
                    }
                }
            }
            Err(message) => {
                host::warn(format!("{origin}: {message}"));
                snapshot.problems.push(Problem { origin, message });
            }
        }
    }
    Ok(snapshot)
}

wasmlet_plugin_sdk::pod_source::export_pod_source!(FileSource);
