//! Static pods from a directory, as the kubelet's file source: every file not
//! starting with `.` holds YAML (several documents) or JSON, a Pod or a
//! PodList. A bad file is reported and skipped; the others still count.
//!
//! The directory is re-read when the host signals a change in it, and at
//! least every `check-frequency-ms`.

use pod_manifest::settings::FileSourceSettings;
use pod_manifest::{Origin, read_manifest};
use wasmlet_plugin_sdk::pod_source::{Error, Guest, Problem, Snapshot, SourcePod, changes, host};

use std::sync::atomic::{AtomicBool, Ordering};

static STARTED: AtomicBool = AtomicBool::new(false);

struct FileSource;

impl Guest for FileSource {
    fn next_snapshot() -> Result<Snapshot, Error> {
        let settings: FileSourceSettings = host::typed_settings()?;
        if STARTED.swap(true, Ordering::Relaxed) {
            // Woken by a change or the period: either way, read everything again.
            changes::wait(settings.check_frequency_ms);
        }
        scan(&settings.path, &host::node_name())
    }
}

fn scan(dir: &str, node_name: &str) -> Result<Snapshot, Error> {
    let failed =
        |e: std::io::Error| Error::Failed(format!("reading static pod directory {dir}: {e}"));
    let mut snapshot = Snapshot {
        pods: Vec::new(),
        problems: Vec::new(),
    };
    // A listing that breaks off is a failed snapshot, never a smaller set.
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(failed)? {
        let entry = entry.map_err(failed)?;
        if entry.file_name().to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        // Symlinks are followed, as the kubelet does; one that cannot be
        // (dangling, or pointing out of the granted directory) is reported.
        match std::fs::metadata(&path) {
            Ok(meta) if meta.is_file() => paths.push(path),
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => snapshot.problems.push(Problem {
                origin: path.to_string_lossy().into_owned(),
                message: "not a regular file".into(),
            }),
            Err(e) => snapshot.problems.push(Problem {
                origin: path.to_string_lossy().into_owned(),
                message: format!("cannot follow: {e}"),
            }),
        }
    }
    paths.sort();
    for path in paths {
        let origin = path.to_string_lossy().into_owned();
        let pods = std::fs::read_to_string(&path)
            .map_err(|e| format!("reading: {e}"))
            .and_then(|text| {
                read_manifest(&text, node_name, Origin::File(&origin)).map_err(|e| e.to_string())
            });
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
