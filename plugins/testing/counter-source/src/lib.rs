//! Snapshot n holds one pod, `gen-<n>`; n counts per instance, so a restarted
//! instance starts again at 1. After the first snapshot it waits for a change;
//! with `trap-on-change` it then traps instead of answering.

use std::sync::atomic::{AtomicU32, Ordering};

use serde::Deserialize;
use wasmlet_plugin_sdk::pod_source::{Error, Guest, Snapshot, SourcePod, changes, host};

static GENERATION: AtomicU32 = AtomicU32::new(0);

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Settings {
    #[serde(default)]
    trap_on_change: bool,
}

struct Counter;

impl Guest for Counter {
    fn next_snapshot() -> Result<Snapshot, Error> {
        let settings: Settings = host::typed_settings()?;
        let generation = GENERATION.fetch_add(1, Ordering::Relaxed) + 1;
        if generation > 1 {
            let wake = changes::wait(60_000);
            if settings.trap_on_change && wake == changes::Wake::Changed {
                panic!("counter-source traps on change, as told");
            }
        }
        Ok(Snapshot {
            pods: vec![SourcePod {
                json: format!("{{\"metadata\":{{\"name\":\"gen-{generation}\"}}}}"),
                origin: format!("counter:{}", host::node_name()),
            }],
            problems: Vec::new(),
        })
    }
}

wasmlet_plugin_sdk::pod_source::export_pod_source!(Counter);
